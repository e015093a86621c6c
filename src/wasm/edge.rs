//! Edge worker exports (feature `edge`): the worker issue fills this in.
