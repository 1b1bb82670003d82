//! BuildKit client
