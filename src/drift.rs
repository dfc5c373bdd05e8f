//! The drift guard: restores controller-owned fields (DESIGN.md "Mutation: what is restored").
