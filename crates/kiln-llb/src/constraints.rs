//! Marshal-wide [`Constraints`] and per-op [`OpConstraints`] (Go's
//! `llb.Constraints` and its `ConstraintsOpt`s).

use std::collections::{BTreeMap, BTreeSet};

use kiln_image::Platform;
use kiln_proto::{attrs, caps, pb};

use crate::sourcemap::SourceLocation;

/// What a whole marshal is done for: the default platform of its ops, worker
/// constraints, metadata applied to every op, and what the daemon supports.
///
/// There is no implicit default: the platform is always given by the caller,
/// so the same graph marshals to the same bytes on every host.
///
/// ```
/// use kiln_llb::{Constraints, Platform};
/// let c = Constraints::new(Platform::parse("linux/amd64")?);
/// assert_eq!(c.platform().to_string(), "linux/amd64");
/// # Ok::<(), kiln_image::PlatformError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Constraints {
    pub(crate) platform: Platform,
    pub(crate) worker_constraints: Vec<String>,
    pub(crate) metadata: OpMetadata,
    pub(crate) daemon_caps: Option<BTreeSet<String>>,
    pub(crate) local_unique_id: Option<String>,
}

impl Constraints {
    /// Constraints with `platform` as the default platform of every op
    /// (normalised, like Go's `llb.Platform`).
    pub fn new(platform: Platform) -> Self {
        Constraints {
            platform: platform.normalize(),
            worker_constraints: Vec::new(),
            metadata: OpMetadata::default(),
            daemon_caps: None,
            local_unique_id: None,
        }
    }

    /// The default platform.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Adds a worker constraint filter to every op (Go's `llb.Require`).
    pub fn require(mut self, filter: impl Into<String>) -> Self {
        self.worker_constraints.push(filter.into());
        self
    }

    /// Disables the cache for every op (Go's `llb.IgnoreCache`).
    pub fn ignore_cache(mut self) -> Self {
        self.metadata.ignore_cache = true;
        self
    }

    /// Adds a description entry to every op (Go's `llb.WithDescription`).
    pub fn description(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.description.insert(key.into(), value.into());
        self
    }

    /// The capability ids the daemon reports (Go's `llb.WithCaps`). Only
    /// used to decide whether execs must carry a default `PATH` themselves:
    /// if the daemon lacks `exec.meta.setsdefaultpath`, execs without `PATH`
    /// get the platform's default; if it has it, execs declare the cap.
    /// Without this call kiln cannot know, so execs carry the default `PATH`
    /// (Go's, marshaled without caps, carry none and rely on the daemon).
    pub fn daemon_caps<I, S>(mut self, caps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.daemon_caps = Some(caps.into_iter().map(Into::into).collect());
        self
    }

    /// A `local.unique` id written into local sources that name no session
    /// (Go's `llb.LocalUniqueID`; Go invents a random one, kiln never does).
    pub fn local_unique_id(mut self, id: impl Into<String>) -> Self {
        self.local_unique_id = Some(id.into());
        self
    }
}

/// Constraints and metadata of one op (Go's `ConstraintsOpt`s given to a
/// source, `Run`, `File`, `Merge` or `Diff`). Every options builder of this
/// crate has the same methods, forwarding here.
#[derive(Clone, Debug, Default)]
pub struct OpConstraints {
    pub(crate) platform: Option<Platform>,
    pub(crate) worker_constraints: Vec<String>,
    pub(crate) metadata: OpMetadata,
    pub(crate) locations: Vec<SourceLocation>,
}

/// Gives the op-constraint builder methods access to a type's
/// [`OpConstraints`].
pub(crate) trait HasOpConstraints {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints;
}

/// Generates the shared op-constraint builder methods (custom name,
/// description, ignore cache, …) as inherent methods of an options type.
macro_rules! op_constraint_methods {
    () => {
        /// Names the op in progress output (`llb.customname`).
        pub fn custom_name(mut self, name: impl Into<String>) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self)
                .metadata
                .description
                .insert(
                    kiln_proto::attrs::description::CUSTOM_NAME.to_string(),
                    name.into(),
                );
            self
        }

        /// Adds a free-form description entry (Go's `llb.WithDescription`).
        pub fn description(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self)
                .metadata
                .description
                .insert(key.into(), value.into());
            self
        }

        /// Never uses the cache for this op (Go's `llb.IgnoreCache`).
        pub fn ignore_cache(mut self) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self)
                .metadata
                .ignore_cache = true;
            self
        }

        /// Forces (`true`) or forbids (`false`) exporting this op's result
        /// with the cache (Go's `WithExportCache`/`WithoutExportCache`).
        pub fn export_cache(mut self, export: bool) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self)
                .metadata
                .export_cache = Some(export);
            self
        }

        /// Groups the op's progress (Go's `llb.ProgressGroup`).
        pub fn progress_group(
            mut self,
            id: impl Into<String>,
            name: impl Into<String>,
            weak: bool,
        ) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self)
                .metadata
                .progress_group = Some(kiln_proto::pb::ProgressGroup {
                id: id.into(),
                name: name.into(),
                weak,
            });
            self
        }

        /// Runs or resolves this op for `platform` instead of the state's or
        /// the marshal's default (Go's `llb.Platform` given to an op).
        pub fn platform(mut self, platform: kiln_image::Platform) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self).platform =
                Some(platform.normalize());
            self
        }

        /// Adds a worker constraint filter (Go's `llb.Require`).
        pub fn require(mut self, filter: impl Into<String>) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self)
                .worker_constraints
                .push(filter.into());
            self
        }

        /// Attaches a source location (Go's `SourceMap.Location`).
        pub fn location(mut self, location: $crate::SourceLocation) -> Self {
            $crate::constraints::HasOpConstraints::op_constraints_mut(&mut self)
                .locations
                .push(location);
            self
        }

        /// Replaces all op constraints at once.
        pub fn op_constraints(mut self, constraints: $crate::OpConstraints) -> Self {
            *$crate::constraints::HasOpConstraints::op_constraints_mut(&mut self) = constraints;
            self
        }
    };
}
pub(crate) use op_constraint_methods;

impl HasOpConstraints for OpConstraints {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        self
    }
}

impl OpConstraints {
    /// Empty op constraints.
    pub fn new() -> Self {
        Self::default()
    }

    op_constraint_methods!();

    pub(crate) fn add_cap(&mut self, cap: &'static str) {
        self.metadata.caps.insert(cap);
    }
}

/// Metadata of an op, merged from the marshal's and the op's constraints
/// (Go's `llb.OpMetadata`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OpMetadata {
    pub ignore_cache: bool,
    pub description: BTreeMap<String, String>,
    pub export_cache: Option<bool>,
    pub caps: BTreeSet<&'static str>,
    pub progress_group: Option<pb::ProgressGroup>,
}

impl OpMetadata {
    /// Go's `mergeMetadata(self, other)`: `other` wins where it says something.
    pub fn merged(&self, other: &OpMetadata) -> OpMetadata {
        let mut m = self.clone();
        m.ignore_cache |= other.ignore_cache;
        m.description.extend(
            other
                .description
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if other.export_cache.is_some() {
            m.export_cache = other.export_cache;
        }
        m.caps.extend(other.caps.iter().copied());
        if other.progress_group.is_some() {
            m.progress_group.clone_from(&other.progress_group);
        }
        m
    }

    pub fn to_pb(&self) -> pb::OpMetadata {
        pb::OpMetadata {
            ignore_cache: self.ignore_cache,
            description: self.description.clone(),
            export_cache: self.export_cache.map(|value| pb::ExportCache { value }),
            caps: self.caps.iter().map(|c| (c.to_string(), true)).collect(),
            progress_group: self.progress_group.clone(),
        }
    }
}

/// Merges a decoded `pb.OpMetadata` into another, as Go's marshal does for
/// two vertices with the same digest.
pub(crate) fn merge_pb_metadata(into: &mut pb::OpMetadata, other: &pb::OpMetadata) {
    into.ignore_cache |= other.ignore_cache;
    into.description.extend(
        other
            .description
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    if other.export_cache.is_some() {
        into.export_cache = other.export_cache;
    }
    into.caps
        .extend(other.caps.keys().map(|k| (k.clone(), true)));
    if other.progress_group.is_some() {
        into.progress_group.clone_from(&other.progress_group);
    }
}

/// Go's `MarshalConstraints`: the op envelope (platform, worker constraints)
/// and merged metadata of an op. `platform` is the op's platform, or `None`
/// for ops Go marshals without one (file, merge, diff, non-image sources).
pub(crate) fn envelope(
    c: &Constraints,
    op: &OpConstraints,
    platform: Option<&Platform>,
    op_caps: &BTreeSet<&'static str>,
) -> (pb::Op, pb::OpMetadata) {
    let mut meta = c.metadata.merged(&op.metadata);
    meta.caps.extend(op_caps.iter().copied());
    let mut filter = c.worker_constraints.clone();
    filter.extend(op.worker_constraints.iter().cloned());
    let pop = pb::Op {
        platform: platform.map(platform_to_pb),
        constraints: Some(pb::WorkerConstraints { filter }),
        ..Default::default()
    };
    (pop, meta.to_pb())
}

/// A platform as the wire has it (`pb.Platform`): the one conversion kiln uses.
#[must_use]
pub fn platform_to_pb(p: &Platform) -> pb::Platform {
    pb::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone().unwrap_or_default(),
        os_version: p.os_version.clone().unwrap_or_default(),
        os_features: p.os_features.clone(),
    }
}

/// Caps the terminal op of every definition declares.
pub(crate) const TERMINAL_CAPS: [&str; 2] = [caps::CONSTRAINTS, caps::PLATFORM];

/// The custom name of an op's metadata, if any.
pub(crate) fn custom_name(md: &pb::OpMetadata) -> Option<&str> {
    md.description
        .get(attrs::description::CUSTOM_NAME)
        .map(String::as_str)
}
