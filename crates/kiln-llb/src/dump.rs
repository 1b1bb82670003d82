//! Human-readable views of a [`Definition`]: JSON (for tests, diffs and
//! `kiln llb dump`) and Graphviz dot.
//!
//! Fields that hold their protobuf default (empty strings and lists, `false`,
//! zero enums) are left out of the JSON, so a dump shows what an op says.

use std::fmt::Write as _;

use kiln_proto::pb;
use serde_json::{json, Map, Value};

use crate::constraints::custom_name;
use crate::definition::decode_op;
use crate::Definition;

/// Every op of `def` decoded: digest, inputs, platform, worker constraints,
/// the op's kind and fields, and its metadata; plus the result (`head`) and
/// source maps.
///
/// ```
/// use kiln_llb::{dump, Constraints, Platform};
/// let def = kiln_llb::image("alpine")?.marshal(&Constraints::new(Platform::linux_amd64()))?;
/// let v = dump::to_json(&def);
/// assert_eq!(v["ops"][0]["op"]["identifier"], "docker-image://docker.io/library/alpine:latest");
/// assert_eq!(v["ops"][1]["op"]["kind"], "terminal");
/// # Ok::<(), kiln_llb::LlbError>(())
/// ```
pub fn to_json(def: &Definition) -> Value {
    let pb = def.as_pb();
    let ops: Vec<Value> = pb
        .def
        .iter()
        .map(|bytes| {
            let digest = kiln_image::Digest::sha256_of(bytes).to_string();
            let mut o = Map::new();
            o.insert("digest".into(), json!(digest));
            match decode_op(bytes) {
                Ok(op) => {
                    fill_op(&mut o, &op);
                    if let Some(md) = pb.metadata.get(&digest) {
                        o.insert("metadata".into(), metadata_json(md));
                    }
                }
                Err(e) => {
                    o.insert("error".into(), json!(e.to_string()));
                }
            }
            Value::Object(o)
        })
        .collect();
    let mut top = Map::new();
    top.insert("ops".into(), Value::Array(ops));
    if let Ok(Some((digest, index))) = def.head() {
        top.insert(
            "head".into(),
            json!({"digest": digest.to_string(), "index": index}),
        );
    }
    if let Some(src) = &pb.source {
        if !src.infos.is_empty() {
            top.insert("source".into(), source_json(src));
        }
    }
    Value::Object(top)
}

/// The JSON of one decoded op (without digest or metadata), as in [`to_json`].
pub fn op_to_json(op: &pb::Op) -> Value {
    let mut o = Map::new();
    fill_op(&mut o, op);
    Value::Object(o)
}

fn fill_op(o: &mut Map<String, Value>, op: &pb::Op) {
    if !op.inputs.is_empty() {
        let inputs: Vec<Value> = op
            .inputs
            .iter()
            .map(|i| json!({"digest": i.digest, "index": i.index}))
            .collect();
        o.insert("inputs".into(), Value::Array(inputs));
    }
    if let Some(p) = &op.platform {
        let mut pj = Map::new();
        pj.insert("os".into(), json!(p.os));
        pj.insert("architecture".into(), json!(p.architecture));
        put_str(&mut pj, "variant", &p.variant);
        put_str(&mut pj, "os_version", &p.os_version);
        put_list(&mut pj, "os_features", &p.os_features);
        o.insert("platform".into(), Value::Object(pj));
    }
    if let Some(c) = &op.constraints {
        o.insert("worker_constraints".into(), json!(c.filter));
    }
    o.insert("op".into(), op_json(op.op.as_ref()));
}

fn op_json(op: Option<&pb::op::Op>) -> Value {
    use pb::op::Op;
    match op {
        None => json!({"kind": "terminal"}),
        Some(Op::Source(s)) => {
            json!({"kind": "source", "identifier": s.identifier, "attrs": s.attrs})
        }
        Some(Op::Exec(e)) => exec_json(e),
        Some(Op::File(f)) => {
            let actions: Vec<Value> = f.actions.iter().map(file_action_json).collect();
            json!({"kind": "file", "actions": actions})
        }
        Some(Op::Merge(m)) => {
            let inputs: Vec<i64> = m.inputs.iter().map(|i| i.input).collect();
            json!({"kind": "merge", "inputs": inputs})
        }
        Some(Op::Diff(d)) => json!({
            "kind": "diff",
            "lower": d.lower.map_or(-1, |l| l.input),
            "upper": d.upper.map_or(-1, |u| u.input),
        }),
        Some(Op::Build(_)) => json!({"kind": "build"}),
    }
}

fn exec_json(e: &pb::ExecOp) -> Value {
    let mut o = Map::new();
    o.insert("kind".into(), json!("exec"));
    if let Some(m) = &e.meta {
        let mut mj = Map::new();
        mj.insert("args".into(), json!(m.args));
        put_list(&mut mj, "env", &m.env);
        put_str(&mut mj, "cwd", &m.cwd);
        put_str(&mut mj, "user", &m.user);
        put_str(&mut mj, "hostname", &m.hostname);
        put_str(&mut mj, "cgroup_parent", &m.cgroup_parent);
        put_bool(
            &mut mj,
            "remove_mount_stubs_recursive",
            m.remove_mount_stubs_recursive,
        );
        if !m.valid_exit_codes.is_empty() {
            mj.insert("valid_exit_codes".into(), json!(m.valid_exit_codes));
        }
        if let Some(p) = &m.proxy_env {
            mj.insert(
                "proxy_env".into(),
                json!({"http": p.http_proxy, "https": p.https_proxy, "ftp": p.ftp_proxy, "no": p.no_proxy, "all": p.all_proxy}),
            );
        }
        if !m.extra_hosts.is_empty() {
            let hosts: Vec<Value> = m
                .extra_hosts
                .iter()
                .map(|h| json!({"host": h.host, "ip": h.ip}))
                .collect();
            mj.insert("extra_hosts".into(), Value::Array(hosts));
        }
        if !m.ulimit.is_empty() {
            let u: Vec<Value> = m
                .ulimit
                .iter()
                .map(|u| json!({"name": u.name, "soft": u.soft, "hard": u.hard}))
                .collect();
            mj.insert("ulimit".into(), Value::Array(u));
        }
        o.insert("meta".into(), Value::Object(mj));
    }
    let mounts: Vec<Value> = e.mounts.iter().map(mount_json).collect();
    o.insert("mounts".into(), Value::Array(mounts));
    if e.network != 0 {
        let n = pb::NetMode::try_from(e.network).map_or("INVALID", |n| n.as_str_name());
        o.insert("network".into(), json!(n));
    }
    if e.security != 0 {
        let s = pb::SecurityMode::try_from(e.security).map_or("INVALID", |s| s.as_str_name());
        o.insert("security".into(), json!(s));
    }
    if !e.secretenv.is_empty() {
        let s: Vec<Value> = e
            .secretenv
            .iter()
            .map(|s| {
                let mut sj = Map::new();
                sj.insert("id".into(), json!(s.id));
                sj.insert("name".into(), json!(s.name));
                put_bool(&mut sj, "optional", s.optional);
                Value::Object(sj)
            })
            .collect();
        o.insert("secretenv".into(), Value::Array(s));
    }
    Value::Object(o)
}

fn mount_json(m: &pb::Mount) -> Value {
    let mut o = Map::new();
    let kind = pb::MountType::try_from(m.mount_type).map_or("INVALID", |t| t.as_str_name());
    o.insert("type".into(), json!(kind.to_ascii_lowercase()));
    o.insert("dest".into(), json!(m.dest));
    o.insert("input".into(), json!(m.input));
    o.insert("output".into(), json!(m.output));
    put_bool(&mut o, "readonly", m.readonly);
    put_str(&mut o, "selector", &m.selector);
    if let Some(c) = &m.cache_opt {
        let sharing =
            pb::CacheSharingOpt::try_from(c.sharing).map_or("INVALID", |s| s.as_str_name());
        o.insert(
            "cache".into(),
            json!({"id": c.id, "sharing": sharing.to_ascii_lowercase()}),
        );
    }
    if let Some(t) = &m.tmpfs_opt {
        o.insert("tmpfs".into(), json!({"size": t.size}));
    }
    if let Some(s) = &m.secret_opt {
        o.insert(
            "secret".into(),
            json!({"id": s.id, "uid": s.uid, "gid": s.gid, "mode": format!("{:o}", s.mode), "optional": s.optional}),
        );
    }
    if let Some(s) = &m.ssh_opt {
        o.insert(
            "ssh".into(),
            json!({"id": s.id, "uid": s.uid, "gid": s.gid, "mode": format!("{:o}", s.mode), "optional": s.optional}),
        );
    }
    if m.content_cache != 0 {
        let c =
            pb::MountContentCache::try_from(m.content_cache).map_or("INVALID", |c| c.as_str_name());
        o.insert("content_cache".into(), json!(c.to_ascii_lowercase()));
    }
    put_str(&mut o, "result_id", &m.result_id);
    Value::Object(o)
}

fn chown_json(c: &Option<pb::ChownOpt>) -> Option<Value> {
    let user = |u: &Option<pb::UserOpt>| -> Value {
        match u.as_ref().and_then(|u| u.user.as_ref()) {
            Some(pb::user_opt::User::ById(id)) => json!({"id": id}),
            Some(pb::user_opt::User::ByName(n)) => json!({"name": n.name, "input": n.input}),
            None => Value::Null,
        }
    };
    c.as_ref()
        .map(|c| json!({"user": user(&c.user), "group": user(&c.group)}))
}

fn file_action_json(a: &pb::FileAction) -> Value {
    use pb::file_action::Action as A;
    let mut o = Map::new();
    o.insert("input".into(), json!(a.input));
    o.insert("secondary_input".into(), json!(a.secondary_input));
    o.insert("output".into(), json!(a.output));
    let (kind, fields) = match &a.action {
        Some(A::Mkdir(m)) => {
            let mut f = Map::new();
            f.insert("path".into(), json!(m.path));
            f.insert("mode".into(), json!(format!("{:o}", m.mode)));
            put_bool(&mut f, "make_parents", m.make_parents);
            put_opt(&mut f, "owner", chown_json(&m.owner));
            f.insert("timestamp".into(), json!(m.timestamp));
            ("mkdir", f)
        }
        Some(A::Mkfile(m)) => {
            let mut f = Map::new();
            f.insert("path".into(), json!(m.path));
            f.insert("mode".into(), json!(format!("{:o}", m.mode)));
            f.insert("data".into(), json!(String::from_utf8_lossy(&m.data)));
            put_opt(&mut f, "owner", chown_json(&m.owner));
            f.insert("timestamp".into(), json!(m.timestamp));
            ("mkfile", f)
        }
        Some(A::Rm(r)) => {
            let mut f = Map::new();
            f.insert("path".into(), json!(r.path));
            put_bool(&mut f, "allow_not_found", r.allow_not_found);
            put_bool(&mut f, "allow_wildcard", r.allow_wildcard);
            ("rm", f)
        }
        Some(A::Symlink(s)) => {
            let mut f = Map::new();
            f.insert("oldpath".into(), json!(s.oldpath));
            f.insert("newpath".into(), json!(s.newpath));
            put_opt(&mut f, "owner", chown_json(&s.owner));
            f.insert("timestamp".into(), json!(s.timestamp));
            ("symlink", f)
        }
        Some(A::Copy(c)) => {
            let mut f = Map::new();
            f.insert("src".into(), json!(c.src));
            f.insert("dest".into(), json!(c.dest));
            f.insert(
                "mode".into(),
                if c.mode < 0 {
                    json!(-1)
                } else {
                    json!(format!("{:o}", c.mode))
                },
            );
            put_str(&mut f, "mode_str", &c.mode_str);
            put_opt(&mut f, "owner", chown_json(&c.owner));
            put_bool(&mut f, "follow_symlink", c.follow_symlink);
            put_bool(&mut f, "dir_copy_contents", c.dir_copy_contents);
            put_bool(
                &mut f,
                "attempt_unpack",
                c.attempt_unpack_docker_compatibility,
            );
            put_bool(&mut f, "create_dest_path", c.create_dest_path);
            put_bool(&mut f, "allow_wildcard", c.allow_wildcard);
            put_bool(&mut f, "allow_empty_wildcard", c.allow_empty_wildcard);
            put_list(&mut f, "include_patterns", &c.include_patterns);
            put_list(&mut f, "exclude_patterns", &c.exclude_patterns);
            put_list(&mut f, "required_paths", &c.required_paths);
            put_bool(
                &mut f,
                "always_replace_existing_dest_paths",
                c.always_replace_existing_dest_paths,
            );
            f.insert("timestamp".into(), json!(c.timestamp));
            ("copy", f)
        }
        None => ("none", Map::new()),
    };
    o.insert(kind.into(), Value::Object(fields));
    Value::Object(o)
}

fn metadata_json(md: &pb::OpMetadata) -> Value {
    let mut o = Map::new();
    put_bool(&mut o, "ignore_cache", md.ignore_cache);
    if !md.description.is_empty() {
        o.insert("description".into(), json!(md.description));
    }
    if let Some(e) = &md.export_cache {
        o.insert("export_cache".into(), json!(e.value));
    }
    let caps: Vec<&String> = md
        .caps
        .iter()
        .filter(|(_, v)| **v)
        .map(|(k, _)| k)
        .collect();
    o.insert("caps".into(), json!(caps));
    if let Some(p) = &md.progress_group {
        o.insert(
            "progress_group".into(),
            json!({"id": p.id, "name": p.name, "weak": p.weak}),
        );
    }
    Value::Object(o)
}

fn source_json(src: &pb::Source) -> Value {
    let infos: Vec<Value> = src
        .infos
        .iter()
        .map(|i| json!({"filename": i.filename, "language": i.language, "data_len": i.data.len(), "has_definition": i.definition.is_some()}))
        .collect();
    let locations: Map<String, Value> = src
        .locations
        .iter()
        .map(|(digest, locs)| {
            let l: Vec<Value> = locs
                .locations
                .iter()
                .map(|l| {
                    let ranges: Vec<Value> = l
                        .ranges
                        .iter()
                        .map(|r| {
                            let pos =
                                |p: &Option<pb::Position>| p.map(|p| json!([p.line, p.character]));
                            json!({"start": pos(&r.start), "end": pos(&r.end)})
                        })
                        .collect();
                    json!({"source_index": l.source_index, "ranges": ranges})
                })
                .collect();
            (digest.clone(), Value::Array(l))
        })
        .collect();
    json!({"infos": infos, "locations": locations})
}

fn put_str(o: &mut Map<String, Value>, key: &str, v: &str) {
    if !v.is_empty() {
        o.insert(key.into(), json!(v));
    }
}

fn put_bool(o: &mut Map<String, Value>, key: &str, v: bool) {
    if v {
        o.insert(key.into(), json!(true));
    }
}

fn put_list(o: &mut Map<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        o.insert(key.into(), json!(v));
    }
}

fn put_opt(o: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        o.insert(key.into(), v);
    }
}

/// The graph as Graphviz dot: one box per op (labelled with its custom name
/// or a short description), edges from inputs to their users (labelled with
/// the mount path for execs), and notes for cache mounts, secrets and SSH
/// sockets.
pub fn to_dot(def: &Definition) -> String {
    let pb = def.as_pb();
    let mut out =
        String::from("digraph llb {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n");
    for bytes in &pb.def {
        let digest = kiln_image::Digest::sha256_of(bytes).to_string();
        let id = escape(&short(&digest));
        let Ok(op) = decode_op(bytes) else {
            let _ = writeln!(out, "  \"{id}\" [label=\"undecodable op\", color=red];");
            continue;
        };
        let md = pb.metadata.get(&digest);
        let label = md
            .and_then(custom_name)
            .map(str::to_string)
            .unwrap_or_else(|| describe(&op));
        let shape = if op.op.is_none() {
            ", shape=doublecircle"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  \"{id}\" [label=\"{}\\n{id}\"{shape}];",
            escape(&label)
        );
        for (i, input) in op.inputs.iter().enumerate() {
            let edge = edge_label(&op, i as i64);
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{id}\" [label=\"{}\"];",
                // The input digest is the writer's text, not ours.
                escape(&short(&input.digest)),
                escape(&edge)
            );
        }
        if let Some(pb::op::Op::Exec(e)) = &op.op {
            for (j, m) in e.mounts.iter().enumerate() {
                let note = if let Some(c) = &m.cache_opt {
                    Some(("cylinder", format!("cache {}", c.id)))
                } else if let Some(s) = &m.secret_opt {
                    Some(("note", format!("secret {}", s.id)))
                } else if let Some(s) = &m.ssh_opt {
                    Some((
                        "note",
                        format!("ssh {}", if s.id.is_empty() { "default" } else { &s.id }),
                    ))
                } else if m.tmpfs_opt.is_some() {
                    Some(("note", "tmpfs".to_string()))
                } else {
                    None
                };
                if let Some((shape, text)) = note {
                    let nid = format!("{id}-m{j}");
                    let _ = writeln!(
                        out,
                        "  \"{nid}\" [label=\"{}\", shape={shape}];",
                        escape(&text)
                    );
                    let _ = writeln!(
                        out,
                        "  \"{nid}\" -> \"{id}\" [label=\"{}\", style=dashed];",
                        escape(&m.dest)
                    );
                }
            }
            for (j, s) in e.secretenv.iter().enumerate() {
                let nid = format!("{id}-e{j}");
                let _ = writeln!(
                    out,
                    "  \"{nid}\" [label=\"secret {}\", shape=note];",
                    escape(&s.id)
                );
                let _ = writeln!(
                    out,
                    "  \"{nid}\" -> \"{id}\" [label=\"${}\", style=dashed];",
                    escape(&s.name)
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

fn describe(op: &pb::Op) -> String {
    use pb::file_action::Action as A;
    use pb::op::Op;
    match &op.op {
        None => "result".to_string(),
        Some(Op::Source(s)) => s.identifier.clone(),
        Some(Op::Exec(e)) => {
            let args = e
                .meta
                .as_ref()
                .map(|m| m.args.join(" "))
                .unwrap_or_default();
            if args.chars().count() > 60 {
                format!("{}…", args.chars().take(60).collect::<String>())
            } else {
                args
            }
        }
        Some(Op::File(f)) => f
            .actions
            .iter()
            .map(|a| match &a.action {
                Some(A::Mkdir(m)) => format!("mkdir {}", m.path),
                Some(A::Mkfile(m)) => format!("mkfile {}", m.path),
                Some(A::Rm(r)) => format!("rm {}", r.path),
                Some(A::Symlink(s)) => format!("symlink {} -> {}", s.newpath, s.oldpath),
                Some(A::Copy(c)) => format!("copy {} {}", c.src, c.dest),
                None => "?".to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(Op::Merge(_)) => "merge".to_string(),
        Some(Op::Diff(_)) => "diff".to_string(),
        Some(Op::Build(_)) => "build".to_string(),
    }
}

fn edge_label(op: &pb::Op, input: i64) -> String {
    match &op.op {
        Some(pb::op::Op::Exec(e)) => e
            .mounts
            .iter()
            .filter(|m| m.input == input)
            .map(|m| m.dest.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => format!("{input}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
