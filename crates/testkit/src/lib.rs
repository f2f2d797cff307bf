//! Test support: starts the real `sluice` binary on an ephemeral port.
