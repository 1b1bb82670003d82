//! A typed, immutable LLB graph builder with deterministic marshaling
