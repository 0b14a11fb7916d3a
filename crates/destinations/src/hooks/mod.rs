//! Hand-written hooks, one module per destination; generated code calls
//! `crate::hooks::<dest>::<hook>(&payload, &settings)` with its typed payload and settings.

pub mod userpilot;
