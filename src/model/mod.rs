//! Lenient typed views of the four kinds rollout-guard reads, and the helpers that interpret them
//! (host matching, destination roles, the routes a Rollout manages).

pub mod destinationrule;
pub mod host;
pub mod intern;
pub mod meta;
pub mod object;
pub mod roles;
pub mod rollout;
pub mod routes;
pub mod service;
pub mod virtualservice;

pub use destinationrule::DestinationRule;
pub use meta::{Meta, ANNOTATION_MANAGED_BY, ANNOTATION_SKIP, POD_TEMPLATE_HASH};
pub use object::{Kind, Object, ObjectKey, ParseError, TopLevel};
pub use rollout::Rollout;
pub use service::Service;
pub use virtualservice::VirtualService;
