//! In-process tests of the session: a real HTTP/2 server on one end of a
//! pipe, tonic's generated clients (the daemon's role) on the other.

mod adapter;
mod filesend;
mod filesync;
mod oversized;
mod secrets;
mod session;
mod ssh;
mod support;
