//! The Go recipe (options in, LLB states and image config out) and the Go version resolver
