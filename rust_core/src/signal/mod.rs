//! `signal`: adaptive signal timing, safe by construction.
//!
//! * [`model`]: the intersection (movements, phases, conflict matrix) and its constraints —
//!   minimum/maximum green, ITE kinematic yellow, all-red from (W + L)/v, pedestrian minimum
//!   green — validated once, so nothing downstream ever sees an inconsistent intersection.
//! * [`plan`]: fixed-time plans (Webster, HCM critical-lane) and the cycle-by-cycle
//!   [`plan::AdaptivePlanner`] (degree-of-saturation balancing, smoothed cycle).
//! * [`machine`]: the only thing that emits signal indications. Controllers *request*
//!   transitions; the machine refuses anything that would give conflicting movements green
//!   together, shorten a minimum green (preemption aside, see below), shorten or skip a
//!   yellow or all-red.
//! * [`control`]: controllers producing requests — fixed-time/coordinated, adaptive
//!   plan-follower, max-pressure, the pressure-actuated hybrid, cyclic gap-out, dual ring
//!   and coordinated-actuated — plus
//!   [`control::SignalController`], which steps a controller and the machine together.
//! * [`greenwave`]: common cycle and offsets maximising two-way bandwidth on a corridor.
//!
//! Preemption policy (documented decision, after MUTCD 4D.27 / NEMA TS 2 practice): an
//! emergency preemption may truncate a running green, but never below the phase's
//! preemption entry minimum (default 5 s, and never below the pedestrian minimum when the
//! phase carries pedestrians); it never shortens or omits a yellow or an all-red.

pub mod control;
pub mod greenwave;
pub mod machine;
pub mod model;
pub mod plan;

pub use control::{
    CoordActuatedController, CoordActuatedParams, CyclicGapController, CyclicGapParams, Decision,
    DetectorState, DischargeParams, DualRingController, DualRingParams, FixedTimeController,
    MaxPressureController, MaxPressureParams, PressureActuatedController, PressureActuatedParams,
    SignalController, Strategy,
};
pub use greenwave::{GreenWaveCorridor, GreenWaveResult};
pub use machine::{Interval, LightState, SignalMachine, Status};
pub use model::{
    ClearanceParams, FourArmOptions, Intersection, IntersectionSpec, Movement, PhaseSpec, Turn,
};
pub use plan::{AdaptiveParams, AdaptivePlanner, Plan};
