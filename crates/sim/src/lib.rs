//! A simulated service mesh with fault injection, for `warden demo` and the
//! end-to-end tests.
//!
//! The mesh is a deterministic function of its seed and of the actions
//! applied to it: it advances on a clock it is given (never the wall clock),
//! and emits what a real mesh would — metric samples, sampled traces, log and
//! alert lines, and change events (deploys, config changes). Load follows a
//! diurnal curve with noise; latency and errors propagate from callees to
//! callers; CPU saturation raises queueing latency.
//!
//! The simulator knows the ground truth of the fault it injected; warden's
//! detectors and ranker never read it (only the demo's summary and the tests
//! compare against it).

mod cases;
mod fault;
mod mesh;

pub use cases::{SYNTH_FAULTS, SynthCase, synthetic_case};
pub use fault::{Fault, Scenario, ScenarioError};
pub use mesh::{LogLine, Mesh, MeshSnapshot, ServiceState, SimError, topology};
