//! The metadata a [`State`](crate::State) carries besides its output: the
//! environment, working directory, user, hostname, platform, network and
//! security modes, extra hosts, ulimits and free-form values that an exec
//! run on the state inherits (Go's `meta.go`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use kiln_image::Platform;
use kiln_proto::pb;

use crate::path;

/// Network mode of an exec (Go's `llb.NetModeSandbox|Host|None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetMode {
    /// The default: an isolated network namespace with outbound access.
    #[default]
    Sandbox,
    /// The host's network (needs the `network.host` entitlement).
    Host,
    /// No network at all.
    None,
}

impl NetMode {
    pub(crate) fn to_pb(self) -> pb::NetMode {
        match self {
            NetMode::Sandbox => pb::NetMode::Unset,
            NetMode::Host => pb::NetMode::Host,
            NetMode::None => pb::NetMode::None,
        }
    }
}

/// Security mode of an exec (Go's `llb.SecurityModeSandbox|Insecure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityMode {
    /// The default sandbox.
    #[default]
    Sandbox,
    /// Privileged (needs the `security.insecure` entitlement).
    Insecure,
}

impl SecurityMode {
    pub(crate) fn to_pb(self) -> pb::SecurityMode {
        match self {
            SecurityMode::Sandbox => pb::SecurityMode::Sandbox,
            SecurityMode::Insecure => pb::SecurityMode::Insecure,
        }
    }
}

/// An `/etc/hosts` entry for execs (Go's `llb.HostIP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostIp {
    pub host: String,
    pub ip: IpAddr,
}

/// A resource limit for execs (Go's `pb.Ulimit`; names like `nofile`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// Proxy settings the daemon passes to an exec without them becoming part of
/// the cache key (Go's `llb.ProxyEnv`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    pub http_proxy: String,
    pub https_proxy: String,
    pub ftp_proxy: String,
    pub no_proxy: String,
    pub all_proxy: String,
}

impl ProxyEnv {
    pub(crate) fn to_pb(&self) -> pb::ProxyEnv {
        pb::ProxyEnv {
            http_proxy: self.http_proxy.clone(),
            https_proxy: self.https_proxy.clone(),
            ftp_proxy: self.ftp_proxy.clone(),
            no_proxy: self.no_proxy.clone(),
            all_proxy: self.all_proxy.clone(),
        }
    }
}

/// A working directory as given, linked to the one it was set on: relative
/// values are resolved against the previous directory only when read (at
/// marshal time), as Go does.
#[derive(Debug)]
pub(crate) struct DirNode {
    value: String,
    prev: Option<Arc<DirNode>>,
}

impl Drop for DirNode {
    /// Unlinks a long chain of directories without recursion.
    fn drop(&mut self) {
        let mut next = self.prev.take();
        while let Some(node) = next {
            next = Arc::into_inner(node).and_then(|mut n| n.prev.take());
        }
    }
}

/// An ordered environment: one entry per key, in the order of each key's
/// latest assignment (Go's `EnvList`).
pub(crate) type Env = Arc<Vec<(String, String)>>;

#[derive(Clone, Debug, Default)]
pub(crate) struct Meta {
    pub env: Env,
    pub dir: Option<Arc<DirNode>>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub platform: Option<Platform>,
    pub network: Option<NetMode>,
    pub security: Option<SecurityMode>,
    pub extra_hosts: Arc<Vec<HostIp>>,
    pub ulimits: Arc<Vec<Ulimit>>,
    pub cgroup_parent: Option<String>,
    pub values: Arc<BTreeMap<String, String>>,
}

impl Meta {
    /// Go's `EnvList.AddOrReplace`.
    pub fn add_env(&mut self, key: &str, value: &str) {
        let env = Arc::make_mut(&mut self.env);
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    }

    /// Go's `EnvList.SetDefault`.
    pub fn env_set_default(env: &mut Vec<(String, String)>, key: &str, value: &str) {
        if !env.iter().any(|(k, _)| k == key) {
            env.push((key.to_string(), value.to_string()));
        }
    }

    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_dir(&mut self, value: &str) {
        self.dir = Some(Arc::new(DirNode {
            value: value.to_string(),
            prev: self.dir.take(),
        }));
    }

    /// The working directory, relative values joined onto the previous one
    /// (`/` when none was ever set, as Go's `NewState` sets).
    pub fn resolved_dir(&self) -> String {
        // Walk back to the latest absolute value, then join the relative
        // values set after it, oldest first.
        let mut relatives = Vec::new();
        let mut base = "/".to_string();
        let mut node = self.dir.as_deref();
        while let Some(n) = node {
            if path::is_abs(&n.value) {
                base = n.value.clone();
                break;
            }
            relatives.push(n.value.as_str());
            node = n.prev.as_deref();
        }
        for rel in relatives.into_iter().rev() {
            base = path::join(&[&base, rel]);
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_ordered_by_latest_assignment() {
        let mut m = Meta::default();
        m.add_env("A", "1");
        m.add_env("B", "2");
        m.add_env("A", "3");
        assert_eq!(
            *m.env,
            vec![
                ("B".to_string(), "2".to_string()),
                ("A".to_string(), "3".to_string())
            ]
        );
        assert_eq!(m.get_env("A"), Some("3"));
        assert_eq!(m.get_env("C"), None);
    }

    #[test]
    fn relative_dirs_resolve_against_the_previous_one() {
        let mut m = Meta::default();
        assert_eq!(m.resolved_dir(), "/");
        m.set_dir("src");
        assert_eq!(m.resolved_dir(), "/src");
        m.set_dir("a/../b");
        assert_eq!(m.resolved_dir(), "/src/b");
        m.set_dir("/abs/.");
        m.set_dir("..");
        assert_eq!(m.resolved_dir(), "/");
        m.set_dir("/w/");
        assert_eq!(
            m.resolved_dir(),
            "/w/",
            "absolute values are kept verbatim, as in Go"
        );
    }
}
