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
            // Like Go's llb.Merge, the result keeps the first input's
            // metadata (dir, env, user, platform) with the merge as output.
            let first = inputs[0].clone();
            let node = Node::new(OpNode::Merge(MergeOp { inputs }), oc);
            first.with_head(Head::Output(Output { node, index: 0 }))
        }
    }
}

impl MergeOp {
    pub(crate) fn release(&mut self, out: &mut Vec<crate::state::Owned>) {
        for s in &mut self.inputs {
            s.release(out);
        }
    }

    pub fn inputs(&self) -> Result<Vec<Output>, LlbError> {
        let mut out = Vec::new();
        for s in &self.inputs {
            if let Some(o) = s.head.output()? {
                out.push(o.clone());
            }
        }
        Ok(out)
    }

    /// Go's `MergeOp.Marshal`: every input listed, duplicates included, and
    /// no platform.
    pub fn marshal(
        &self,
        oc: &OpConstraints,
        ctx: &Ctx<'_>,
    ) -> Result<(pb::Op, pb::OpMetadata), LlbError> {
        // Like Go's MergeOp.Marshal (`pop.Platform = nil`): a merge op is
        // not platform specific, so it carries no platform, not even one
        // given with `MergeOptions::platform`.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testutil::{def, golden, head};
    use crate::*;

    fn alpine() -> State {
        image("alpine").expect("valid")
    }

    #[test]
    fn merge_op() {
        let app = scratch().mkfile(Mkfile::new("/app", 0o755, "x"));
        let st = merge_with(
            &[alpine(), scratch(), app.clone(), alpine()],
            MergeOptions::new().custom_name("merge"),
        );
        // Go: app := llb.Scratch().File(llb.Mkfile("/app", 0755, []byte("x")))
        //     llb.Merge([]llb.State{llb.Image("alpine"), llb.Scratch(), app, llb.Image("alpine")},
        //         llb.WithCustomName("merge"))
        // - input digests: sha256 of the op bytes, checked against the daemon separately;
        //   alpine a7f9733e… re-derived by hand (layout of the Go fixture image_run.pb).
        // - scratch inputs dropped before the op is built — merge.go Merge.
        // - inputs not deduplicated: one pb.Input and one MergeInput{Input: len(inputs)} per
        //   state, so alpine appears twice and "inputs" is [0, 1, 2] — merge.go (*MergeOp).Marshal.
        // - caps: mergeop — merge.go Merge (addCap CapMergeOp).
        // - description llb.customname — state.go WithCustomName.
        // - no platform: Go's (*MergeOp).Marshal sets pop.Platform = nil ("merge op is not
        //   platform specific", merge.go line 47, there since MergeOp was added). Kiln used to
        //   write {amd64, linux} here; MergeOp::marshal now passes no platform to envelope, as
        //   diff.rs does, so kiln matches Go.
        // - digest cf2051f6…: the sha256 of the op bytes, recomputed from kiln's output after the
        //   fix and checked by hand against Go's layout: three pb.Input (digest only, index 0
        //   omitted), an empty WorkerConstraints (field 11), then the oneof merge (field 6) with
        //   MergeInput{} / {1} / {2} — and no field 10. The app input 8cc88554… re-derived the
        //   same way (FileOp with one mkfile: input/secondary -1, path "/app", mode 493, data
        //   "x", timestamp -1).
        // - worker_constraints []: MarshalConstraints always sets it (marshal.go).
        golden(
            "merge",
            &head(&st),
            r#"
{
  "digest": "sha256:cf2051f60f9271ecd106c4c17bc0c946a64ae444bfbf5b0ab243b2d60e7d7416",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    },
    {
      "digest": "sha256:8cc8855440b1c66338392a59da0113cf502f612e12665ab1a5ce959cb40de003",
      "index": 0
    },
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "mergeop"
    ],
    "description": {
      "llb.customname": "merge"
    }
  },
  "op": {
    "inputs": [
      0,
      1,
      2
    ],
    "kind": "merge"
  },
  "worker_constraints": []
}
        "#,
        );
        // Go lists duplicate inputs again; the definition lists each op once.
        assert_eq!(def(&st).len(), 4); // alpine, app, merge, terminal
    }

    #[test]
    fn merge_op_has_no_platform_even_when_given_one() {
        // Go: pop.Platform = nil after MarshalConstraints, whatever llb.Platform the merge
        // was given — merge.go (*MergeOp).Marshal.
        let arm = Platform::parse("linux/arm64").expect("valid");
        let st = merge_with(
            &[alpine(), scratch().mkfile(Mkfile::new("/a", 0o644, ""))],
            MergeOptions::new().platform(arm),
        );
        let h = head(&st);
        assert_eq!(h["op"]["kind"], "merge");
        assert!(h.get("platform").is_none(), "{h}");
        let plain = merge(&[alpine(), scratch().mkfile(Mkfile::new("/a", 0o644, ""))]);
        assert_eq!(h["digest"], head(&plain)["digest"]);
    }

    #[test]
    fn merged_state_keeps_the_first_inputs_metadata() {
        // Go: llb.Merge returns filtered[0].WithOutput(mergeOp.Output()).
        let first = alpine().dir("/work");
        let st = merge(&[
            first,
            scratch().mkfile(Mkfile::new("/a", 0o644, "")).dir("/other"),
        ]);
        assert_eq!(st.get_dir(), "/work");
    }

    #[test]
    fn merge_collapses_scratch() {
        assert!(merge(&[]).is_scratch());
        assert!(merge(&[scratch(), scratch()]).is_scratch());
        let one = merge(&[scratch(), alpine()]);
        assert_eq!(head(&one)["op"]["kind"], "source");
    }

    #[test]
    fn diff_op() {
        let upper = alpine().run(ExecOptions::shell("apk add git")).root();
        let st = diff(&alpine(), &upper);
        // Go: llb.Diff(llb.Image("alpine"),
        //         llb.Image("alpine").Run(llb.Args([]string{"/bin/sh", "-c", "apk add git"})).Root())
        // - digest / input digests: sha256 of the op bytes, checked against the daemon
        //   separately. The upper input (the exec) has kiln's default PATH in its env, which Go
        //   without daemon caps leaves out (see exec_basic), so Go's upper digest would differ.
        // - lower 0 / upper 1: LowerDiffInput{len(inputs)} then append, same for upper; -1
        //   (pb.Empty) only for a scratch side — diff.go (*DiffOp).Marshal.
        // - caps: diffop — diff.go NewDiff.
        // - no platform: diff.go (*DiffOp).Marshal sets proto.Platform = nil.
        // - worker_constraints []: MarshalConstraints always sets it (marshal.go).
        golden(
            "diff",
            &head(&st),
            r#"
{
  "digest": "sha256:952f466964b099ef8371681afabe9229bca9d46ca8f8f05aae1e8b74cb26773d",
  "inputs": [
    {
      "digest": "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51",
      "index": 0
    },
    {
      "digest": "sha256:a2434eaf0e8ca60c327aec38db8286eb8c70619f480cf3840a3f946951d75f40",
      "index": 0
    }
  ],
  "metadata": {
    "caps": [
      "diffop"
    ]
  },
  "op": {
    "kind": "diff",
    "lower": 0,
    "upper": 1
  },
  "worker_constraints": []
}
        "#,
        );
    }

    #[test]
    fn diff_of_scratch_is_upper_and_keeps_lower_meta() {
        let upper = alpine();
        assert_eq!(head(&diff(&scratch(), &upper))["op"]["kind"], "source");
        assert!(diff(&scratch(), &scratch()).is_scratch());
        let lower = alpine().dir("/lower");
        let d = diff(&lower, &scratch());
        assert_eq!(d.get_dir(), "/lower");
        let h = head(&d);
        assert_eq!(h["op"], json!({"kind": "diff", "lower": 0, "upper": -1}));
    }
}
