#![forbid(unsafe_code)]
pub mod addr;
pub mod chat;
pub mod diff;
pub mod error;
pub mod fuzzing;
pub mod kernel;
pub mod pairs;
pub mod programs;
pub mod reactor;
pub mod readiness;
pub mod real;
pub mod scenario;
pub mod sim;
pub mod socket;
