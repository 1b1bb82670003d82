//! The BuildKit session: file sync, file send, secrets, ssh-agent forwarding, registry auth
