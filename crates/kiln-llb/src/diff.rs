//! Diff ops: the changes between two states (Go's `diff.go`).

use std::collections::BTreeSet;

use kiln_proto::{caps, pb};

use crate::constraints::{envelope, OpConstraints};
use crate::error::LlbError;
use crate::marshal::Ctx;
use crate::merge::MergeOptions;
use crate::state::{Head, Node, OpNode, Output, State};

pub(crate) struct DiffOp {
    lower: State,
    upper: State,
}

/// The changes that turn `lower` into `upper`, as a state that can be
/// merged onto other bases (Go's `llb.Diff`). The result keeps `lower`'s
/// metadata. A scratch `lower` gives `upper` itself.
pub fn diff(lower: &State, upper: &State) -> State {
    diff_with(lower, upper, MergeOptions::default())
}

/// [`diff`] with op constraints.
pub fn diff_with(lower: &State, upper: &State, opts: MergeOptions) -> State {
    if lower.is_scratch() {
        return upper.clone();
    }
    let mut oc = opts.into_op();
    oc.add_cap(caps::DIFF_OP);
    let node = Node::new(
        OpNode::Diff(DiffOp {
            lower: lower.clone(),
            upper: upper.clone(),
        }),
        oc,
    );
    lower.with_head(Head::Output(Output { node, index: 0 }))
}

impl DiffOp {
    pub(crate) fn release(&mut self, out: &mut Vec<crate::state::Owned>) {
        self.lower.release(out);
        self.upper.release(out);
    }

    pub fn inputs(&self) -> Result<Vec<Output>, LlbError> {
        let mut out = Vec::new();
        for s in [&self.lower, &self.upper] {
            if let Some(o) = s.head.output()? {
                out.push(o.clone());
            }
        }
        Ok(out)
    }

    /// Go's `DiffOp.Marshal`: lower then upper, `-1` for scratch.
    pub fn marshal(
        &self,
        oc: &OpConstraints,
        ctx: &Ctx<'_>,
    ) -> Result<(pb::Op, pb::OpMetadata), LlbError> {
        // Like Go's DiffOp.Marshal: not platform specific, no platform.
        let (mut pop, md) = envelope(ctx.c, oc, None, &BTreeSet::new());
        let side = |s: &State, pop: &mut pb::Op| -> Result<i64, LlbError> {
            Ok(match s.head.output()? {
                Some(o) => {
                    pop.inputs.push(ctx.input(o)?);
                    pop.inputs.len() as i64 - 1
                }
                None => -1,
            })
        };
        let lower = side(&self.lower, &mut pop)?;
        let upper = side(&self.upper, &mut pop)?;
        pop.op = Some(pb::op::Op::Diff(pb::DiffOp {
            lower: Some(pb::LowerDiffInput { input: lower }),
            upper: Some(pb::UpperDiffInput { input: upper }),
        }));
        Ok((pop, md))
    }
}
