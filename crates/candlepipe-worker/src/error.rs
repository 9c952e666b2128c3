//! The error every part of the worker can return when the caller only logs or stops on it.

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
