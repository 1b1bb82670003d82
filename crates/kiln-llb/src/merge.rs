//! Merge ops: layer states on top of each other (Go's `merge.go`).

use std::collections::BTreeSet;

use kiln_proto::{caps, pb};

use crate::constraints::{envelope, op_constraint_methods, HasOpConstraints, OpConstraints};
use crate::error::LlbError;
use crate::marshal::Ctx;
use crate::state::{Head, Node, OpNode, Output, State};

/// Op constraints of a merge or diff op.
#[derive(Clone, Debug, Default)]
pub struct MergeOptions {
    op: OpConstraints,
}

impl HasOpConstraints for MergeOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl MergeOptions {
    pub fn new() -> Self {
        Self::default()
    }

    op_constraint_methods!();

    pub(crate) fn into_op(self) -> OpConstraints {
        self.op
    }
}

pub(crate) struct MergeOp {
    inputs: Vec<State>,
}

/// Layers `states` on top of each other, later ones winning (Go's
/// `llb.Merge`). Scratch inputs are dropped; merging nothing is scratch and
/// merging one state is that state.
///
/// ```
/// let base = kiln_llb::image("alpine:3.20")?;
/// let app = kiln_llb::scratch().mkfile(kiln_llb::Mkfile::new("/app", 0o755, "#!/bin/sh\n"));
/// let merged = kiln_llb::merge(&[base, app]);
/// # let _ = merged;
/// # Ok::<(), kiln_llb::LlbError>(())
/// ```
pub fn merge(states: &[State]) -> State {
    merge_with(states, MergeOptions::default())
}

/// [`merge`] with op constraints.
pub fn merge_with(states: &[State], opts: MergeOptions) -> State {
    let inputs: Vec<State> = states.iter().filter(|s| !s.is_scratch()).cloned().collect();
    match inputs.len() {
        0 => crate::scratch(),
        1 => inputs[0].clone(),
        _ => {
            let mut oc = opts.into_op();
            oc.add_cap(caps::MERGE_OP);
            let node = Node::new(OpNode::Merge(MergeOp { inputs }), oc);
            State::from_head(Head::Output(Output { node, index: 0 }))
        }
    }
}

impl MergeOp {
    pub fn inputs(&self) -> Result<Vec<Output>, LlbError> {
        let mut out = Vec::new();
        for s in &self.inputs {
            if let Some(o) = s.head.output()? {
                out.push(o.clone());
            }
        }
        Ok(out)
    }

    /// Go's `MergeOp.Marshal`: every input listed, duplicates included.
    pub fn marshal(
        &self,
        oc: &OpConstraints,
        ctx: &Ctx<'_>,
    ) -> Result<(pb::Op, pb::OpMetadata), LlbError> {
        let (mut pop, md) = envelope(ctx.c, oc, None, &BTreeSet::new());
        let mut merge = pb::MergeOp::default();
        for o in self.inputs()? {
            merge.inputs.push(pb::MergeInput {
                input: pop.inputs.len() as i64,
            });
            pop.inputs.push(ctx.input(&o)?);
        }
        pop.op = Some(pb::op::Op::Merge(merge));
        Ok((pop, md))
    }
}
