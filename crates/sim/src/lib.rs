//! Simulated service mesh with fault injection.
