//! Daemon and registry harness for kiln's integration tests
