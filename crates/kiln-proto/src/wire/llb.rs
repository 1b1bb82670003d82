//! `pb` (ops.proto): the messages of a Definition that hold a map or a
//! oneof before regular fields. `ExecOp`, `FileOp`, `MergeOp`, `DiffOp`,
//! `Platform`, `Input`, `WorkerConstraints`, `ExportCache`, `ProgressGroup`,
//! `BuildInput` and `Locations` have neither and are written by prost.

use super::enc::{self, leaf, map, message};
use super::GoEncode;
use crate::pb;

impl GoEncode for pb::Op {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let pb::Op {
            inputs,
            platform,
            constraints,
            op,
        } = self;
        for input in inputs {
            leaf(1, input, buf);
        }
        if let Some(platform) = platform {
            leaf(10, platform, buf);
        }
        if let Some(constraints) = constraints {
            leaf(11, constraints, buf);
        }
        // The oneof last, as Go writes it.
        match op {
            None => {}
            Some(pb::op::Op::Exec(exec)) => leaf(2, exec, buf),
            Some(pb::op::Op::Source(source)) => message(3, source, buf),
            Some(pb::op::Op::File(file)) => leaf(4, file, buf),
            Some(pb::op::Op::Build(build)) => message(5, build, buf),
            Some(pb::op::Op::Merge(merge)) => leaf(6, merge, buf),
            Some(pb::op::Op::Diff(diff)) => leaf(7, diff, buf),
        }
    }
}

impl GoEncode for pb::SourceOp {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let pb::SourceOp { identifier, attrs } = self;
        enc::string(1, identifier, buf);
        map(2, attrs, buf, enc::value_bytes);
    }
}

impl GoEncode for pb::BuildOp {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let pb::BuildOp {
            builder,
            inputs,
            def,
            attrs,
        } = self;
        enc::int64(1, *builder, buf);
        map(2, inputs, buf, enc::value_leaf);
        if let Some(def) = def {
            message(3, def, buf);
        }
        map(4, attrs, buf, enc::value_bytes);
    }
}

impl GoEncode for pb::Definition {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let pb::Definition {
            def,
            metadata,
            source,
        } = self;
        enc::repeated(1, def, buf);
        map(2, metadata, buf, enc::value_message);
        if let Some(source) = source {
            message(3, source, buf);
        }
    }
}

impl GoEncode for pb::OpMetadata {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let pb::OpMetadata {
            ignore_cache,
            description,
            export_cache,
            caps,
            progress_group,
        } = self;
        enc::bool(1, *ignore_cache, buf);
        map(2, description, buf, enc::value_bytes);
        if let Some(export_cache) = export_cache {
            leaf(4, export_cache, buf);
        }
        map(5, caps, buf, enc::value_bool);
        if let Some(progress_group) = progress_group {
            leaf(6, progress_group, buf);
        }
    }
}

impl GoEncode for pb::Source {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let pb::Source { locations, infos } = self;
        // An empty `Locations` value is written as `12 00`: vtprotobuf
        // decodes a missing one as a nil pointer (see the module docs).
        map(1, locations, buf, enc::value_leaf);
        for info in infos {
            message(2, info, buf);
        }
    }
}

impl GoEncode for pb::SourceInfo {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let pb::SourceInfo {
            filename,
            data,
            definition,
            language,
        } = self;
        enc::string(1, filename, buf);
        enc::bytes(2, data, buf);
        if let Some(definition) = definition {
            message(3, definition, buf);
        }
        enc::string(4, language, buf);
    }
}
