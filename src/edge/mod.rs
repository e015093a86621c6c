//! Edge-only plain Rust (feature `edge`): the worker issue fills this in.
