# rollout-guard's cross-object checks between Argo Rollouts and Istio, written as Gatekeeper users
# write them, for the peer in `make bench` (benches/opa.rs): Open Policy Agent evaluates it on
#   input.review      the AdmissionReview's request (Gatekeeper's layout)
#   data.inventory    the cluster's objects, data.inventory.namespace[ns][apiVersion][kind][name]
# and answers data.rolloutguard.violation, a set of {"msg": ...}; empty means allowed.
#
# What it checks (the rule ids are rollout-guard's, DESIGN.md):
# - a Rollout (CREATE/UPDATE) against the VirtualServices and DestinationRule it references:
#   http-route-not-found, tls-route-not-found, canary-/stable-destination-missing on each managed
#   http and tls route, destinationrule-subset-missing;
# - a VirtualService or DestinationRule write against the Rollouts of its namespace that use it:
#   breaks-rollout when the new object has a problem for one of them that the old one did not.
# Not here (rollout-guard has them): the Rollout's self-contained rules, Service selectors, host
# forms across namespaces, the ratchet on Rollout UPDATEs, warnings, and mutation.
package rolloutguard

review := input.review

violation contains {"msg": msg} if {
	review.kind.kind == "Rollout"
	rollout := review.object
	some ref in vs_refs(rollout)
	vs := virtual_service(rollout.metadata.namespace, ref_name(ref))
	some problem in problems(rollout, ref, vs)
	msg := sprintf("%s (VirtualService %s/%s)", [problem, rollout.metadata.namespace, vs.metadata.name])
}

violation contains {"msg": msg} if {
	review.kind.kind == "Rollout"
	rollout := review.object
	ref := rollout.spec.strategy.canary.trafficRouting.istio.destinationRule
	some gv
	dr := data.inventory.namespace[rollout.metadata.namespace][gv].DestinationRule[ref.name]
	some problem in subset_problems(ref, dr)
	msg := sprintf("%s (DestinationRule %s/%s)", [problem, rollout.metadata.namespace, ref.name])
}

violation contains {"msg": msg} if {
	review.kind.kind == "VirtualService"
	vs := review.object
	some gv, name
	rollout := data.inventory.namespace[vs.metadata.namespace][gv].Rollout[name]
	some ref in vs_refs(rollout)
	ref_name(ref) == vs.metadata.name
	after := problems(rollout, ref, vs)
	count(after) > 0
	count(problems_before(rollout, ref)) == 0
	msg := sprintf("breaks-rollout: Rollout %s/%s: %s", [vs.metadata.namespace, name, concat("; ", sort(after))])
}

violation contains {"msg": msg} if {
	review.kind.kind == "DestinationRule"
	dr := review.object
	some gv, name
	rollout := data.inventory.namespace[dr.metadata.namespace][gv].Rollout[name]
	ref := rollout.spec.strategy.canary.trafficRouting.istio.destinationRule
	ref.name == dr.metadata.name
	after := subset_problems(ref, dr)
	count(after) > 0
	count(subset_problems_before(ref)) == 0
	msg := sprintf("breaks-rollout: Rollout %s/%s: %s", [dr.metadata.namespace, name, concat("; ", sort(after))])
}

# --- references -------------------------------------------------------------------------------

vs_refs(rollout) := array.concat(object.get(istio, "virtualServices", []), single) if {
	istio := rollout.spec.strategy.canary.trafficRouting.istio
	single := [v | v := istio.virtualService]
}

# `name` or `name.namespace`: the object's name is the first label.
ref_name(ref) := split(ref.name, ".")[0]

virtual_service(namespace, name) := vs if {
	some gv
	vs := data.inventory.namespace[namespace][gv].VirtualService[name]
}

problems_before(rollout, ref) := problems(rollout, ref, review.oldObject) if {
	review.oldObject != null
} else := set()

subset_problems_before(ref) := subset_problems(ref, review.oldObject) if {
	review.oldObject != null
} else := set()

# --- a Rollout against one VirtualService -----------------------------------------------------

problems(rollout, ref, vs) := (http_route_problems(ref, vs) | tls_route_problems(ref, vs)) | destination_problems(rollout, ref, vs)

http_routes(vs) := object.get(vs, ["spec", "http"], [])

tls_routes(vs) := object.get(vs, ["spec", "tls"], [])

http_route_problems(ref, vs) := {sprintf("http-route-not-found: no http route %q", [name]) |
	some name in object.get(ref, "routes", [])
	not has_http_route(vs, name)
}

has_http_route(vs, name) if {
	some route in http_routes(vs)
	route.name == name
}

tls_route_problems(ref, vs) := {sprintf("tls-route-not-found: no tls route for port %v, sniHosts %v", [object.get(tref, "port", "any"), object.get(tref, "sniHosts", [])]) |
	some tref in object.get(ref, "tlsRoutes", [])
	not has_tls_route(vs, tref)
}

has_tls_route(vs, tref) if {
	some route in tls_routes(vs)
	tls_route_matches(route, tref)
}

tls_route_matches(route, tref) if {
	some m in route.match
	object.get(tref, "port", object.get(m, "port", 0)) == object.get(m, "port", 0)
	every host in object.get(tref, "sniHosts", []) {
		host in object.get(m, "sniHosts", [])
	}
}

# The http routes the Rollout manages: those it names, or the only one when it names none.
managed_http_routes(ref, vs) := [route |
	some route in http_routes(vs)
	route.name in ref.routes
] if {
	count(object.get(ref, "routes", [])) > 0
} else := http_routes(vs) if {
	count(http_routes(vs)) == 1
} else := []

managed_tls_routes(ref, vs) := [route |
	some route in tls_routes(vs)
	some tref in object.get(ref, "tlsRoutes", [])
	tls_route_matches(route, tref)
]

destination_problems(rollout, ref, vs) := {sprintf("%s-destination-missing: a managed %s route has no %s destination", [role, section, role]) |
	some [section, routes] in [["http", managed_http_routes(ref, vs)], ["tls", managed_tls_routes(ref, vs)]]
	some route in routes
	some role in ["canary", "stable"]
	not has_destination(rollout, route, role)
}

# Subset level: a destination with the role's subset; host level: one to the role's Service.
has_destination(rollout, route, role) if {
	dr := rollout.spec.strategy.canary.trafficRouting.istio.destinationRule
	subset := dr[sprintf("%sSubsetName", [role])]
	some d in route.route
	d.destination.subset == subset
}

has_destination(rollout, route, role) if {
	not rollout.spec.strategy.canary.trafficRouting.istio.destinationRule
	service := rollout.spec.strategy.canary[sprintf("%sService", [role])]
	some d in route.route
	host_is(d.destination.host, service, rollout.metadata.namespace)
}

host_is(host, service, _) if host == service

host_is(host, service, namespace) if host == sprintf("%s.%s.svc.cluster.local", [service, namespace])

# --- a Rollout against its DestinationRule ----------------------------------------------------

subset_problems(ref, dr) := {sprintf("destinationrule-subset-missing: no subset %q", [subset]) |
	some subset in [ref.canarySubsetName, ref.stableSubsetName]
	not has_subset(dr, subset)
}

has_subset(dr, subset) if {
	some s in object.get(dr, ["spec", "subsets"], [])
	s.name == subset
}
