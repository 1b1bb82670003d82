//! Turning a graph of states into a [`Definition`] (Go's `State.Marshal`).
//!
//! A pure function: ops are visited depth-first in Go's input order, each is
//! encoded once in Go's byte order ([`kiln_proto::wire::encode_op`]: the
//! daemon re-marshals every op with Go's protobuf and digests those bytes,
//! so kiln's digests are the daemon's), identified by the sha256 of its
//! bytes and listed once per digest, inputs before their users, followed by
//! the terminal op that names the result. Nothing depends on the host,
//! the time, memory addresses or hashing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kiln_image::Digest;
use kiln_proto::{caps, pb, wire};

use crate::constraints::{merge_pb_metadata, Constraints, TERMINAL_CAPS};
use crate::error::LlbError;
use crate::sourcemap::Collector;
use crate::state::{Node, OpNode, Output, State};
use crate::Definition;

/// What an op's marshal can see: the constraints and the digests of the
/// ops marshaled before it.
pub(crate) struct Ctx<'a> {
    pub c: &'a Constraints,
    digests: &'a BTreeMap<usize, String>,
}

impl Ctx<'_> {
    /// The `pb.Input` naming an output of an already marshaled op.
    pub fn input(&self, o: &Output) -> Result<pb::Input, LlbError> {
        let digest = self
            .digests
            .get(&o.key())
            .ok_or_else(|| LlbError::MalformedDefinition {
                reason: "internal: an input was not marshaled before its user".to_string(),
            })?;
        Ok(pb::Input {
            digest: digest.clone(),
            index: o.index,
        })
    }
}

impl Node {
    fn marshal(&self, ctx: &Ctx<'_>) -> Result<(pb::Op, pb::OpMetadata), LlbError> {
        match &self.op {
            OpNode::Source(s) => s.marshal(&self.constraints, ctx.c),
            OpNode::Exec(e) => e.marshal(&self.constraints, ctx),
            OpNode::File(f) => f.marshal(&self.constraints, ctx),
            OpNode::Merge(m) => m.marshal(&self.constraints, ctx),
            OpNode::Diff(d) => d.marshal(&self.constraints, ctx),
        }
    }
}

struct Frame {
    node: Arc<Node>,
    children: Vec<Output>,
    next: usize,
}

impl Frame {
    fn new(node: Arc<Node>) -> Result<Frame, LlbError> {
        let children = node.inputs()?;
        Ok(Frame {
            node,
            children,
            next: 0,
        })
    }
}

pub(crate) fn marshal(state: &State, c: &Constraints) -> Result<Definition, LlbError> {
    let Some(root) = state.head.output()?.cloned() else {
        // Go: marshaling scratch gives an empty definition.
        return Ok(Definition::default());
    };
    // Node identity (address) -> op digest, for this call only; the graph
    // holds every node alive until we return.
    let mut digests: BTreeMap<usize, String> = BTreeMap::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut def: Vec<Vec<u8>> = Vec::new();
    let mut metadata: BTreeMap<String, pb::OpMetadata> = BTreeMap::new();
    let mut sources = Collector::default();

    // Iterative post-order walk: a chain of 100k ops must not overflow the stack.
    let mut stack = vec![Frame::new(Arc::clone(&root.node))?];
    while let Some(top) = stack.last_mut() {
        if let Some(child) = top.children.get(top.next) {
            top.next += 1;
            if !digests.contains_key(&child.key()) {
                let frame = Frame::new(Arc::clone(&child.node))?;
                stack.push(frame);
            }
            continue;
        }
        let Some(frame) = stack.pop() else { break };
        let (op, md) = frame.node.marshal(&Ctx {
            c,
            digests: &digests,
        })?;
        let bytes = wire::encode_op(&op);
        let digest = Digest::sha256_of(&bytes).to_string();
        digests.insert(Arc::as_ptr(&frame.node) as usize, digest.clone());
        match metadata.get_mut(&digest) {
            Some(existing) => merge_pb_metadata(existing, &md),
            None => {
                metadata.insert(digest.clone(), md);
            }
        }
        sources.add(&digest, &frame.node.constraints.locations);
        if listed.insert(digest) {
            def.push(bytes);
        }
    }

    let terminal = pb::Op {
        inputs: vec![Ctx {
            c,
            digests: &digests,
        }
        .input(&root)?],
        ..Default::default()
    };
    let bytes = wire::encode_op(&terminal);
    let digest = Digest::sha256_of(&bytes).to_string();
    let mut md = metadata.get(&digest).cloned().unwrap_or_default();
    for cap in TERMINAL_CAPS {
        md.caps.insert(cap.to_string(), true);
    }
    for m in metadata.values() {
        if m.ignore_cache {
            md.caps.insert(caps::META_IGNORE_CACHE.to_string(), true);
        }
        if !m.description.is_empty() {
            md.caps.insert(caps::META_DESCRIPTION.to_string(), true);
        }
        if m.export_cache.is_some() {
            md.caps.insert(caps::META_EXPORT_CACHE.to_string(), true);
        }
    }
    metadata.insert(digest, md);
    def.push(bytes);

    // Go (v0.29's `sourceMapCollector`) gives every op it marshals a
    // `locations` entry, an empty `Locations` for an op without source
    // locations; the terminal op gets none. Written the same way, kiln's
    // definitions are Go's byte for byte.
    let mut source = sources.into_pb();
    for digest in listed {
        source.locations.entry(digest).or_default();
    }
    Ok(Definition::from_pb(pb::Definition {
        def,
        metadata,
        source: Some(source),
    }))
}

#[cfg(test)]
#[path = "marshal_tests.rs"]
mod tests;
