//! The zoo's detectors.
