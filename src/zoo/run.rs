//! `selectlab zoo`.
