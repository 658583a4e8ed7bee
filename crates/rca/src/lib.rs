//! Root-cause ranking on the dependency graph. Pure.
