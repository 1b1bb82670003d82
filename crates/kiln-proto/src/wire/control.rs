//! `moby.buildkit.v1` (control.proto) and `sourcepolicy` (policy.proto):
//! `SolveRequest` and the messages in it that hold maps. `Selector` and
//! `AttrConstraint` have none and are written by prost.

use super::definition::{definition_field, DefinitionBytes, WithDefinition};
use super::enc::{self, leaf, map, message};
use super::GoEncode;
use crate::control;
use crate::moby::buildkit::v1::sourcepolicy;

/// `control.SolveRequest` with `definition` in place of `req.definition`.
fn solve_request(
    req: &control::SolveRequest,
    definition: Option<&DefinitionBytes>,
    buf: &mut Vec<u8>,
) {
    let control::SolveRequest {
        r#ref,
        definition: own_definition,
        exporter_deprecated,
        exporter_attrs_deprecated,
        session,
        frontend,
        frontend_attrs,
        cache,
        entitlements,
        frontend_inputs,
        internal,
        source_policy,
        exporters,
        enable_session_exporter,
        source_policy_session,
    } = req;
    enc::string(1, r#ref, buf);
    definition_field(2, definition, own_definition.as_ref(), buf);
    enc::string(3, exporter_deprecated, buf);
    map(4, exporter_attrs_deprecated, buf, enc::value_bytes);
    enc::string(5, session, buf);
    enc::string(6, frontend, buf);
    map(7, frontend_attrs, buf, enc::value_bytes);
    if let Some(cache) = cache {
        message(8, cache, buf);
    }
    enc::repeated(9, entitlements, buf);
    map(10, frontend_inputs, buf, enc::value_message);
    enc::bool(11, *internal, buf);
    if let Some(policy) = source_policy {
        message(12, policy, buf);
    }
    for exporter in exporters {
        message(13, exporter, buf);
    }
    enc::bool(14, *enable_session_exporter, buf);
    enc::string(15, source_policy_session, buf);
}

impl GoEncode for control::SolveRequest {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        solve_request(self, None, buf);
    }
}

impl GoEncode for WithDefinition<control::SolveRequest> {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        solve_request(&self.request, self.definition.as_ref(), buf);
    }
}

impl GoEncode for control::CacheOptions {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let control::CacheOptions {
            export_ref_deprecated,
            import_refs_deprecated,
            export_attrs_deprecated,
            exports,
            imports,
        } = self;
        enc::string(1, export_ref_deprecated, buf);
        enc::repeated(2, import_refs_deprecated, buf);
        map(3, export_attrs_deprecated, buf, enc::value_bytes);
        for entry in exports {
            message(4, entry, buf);
        }
        for entry in imports {
            message(5, entry, buf);
        }
    }
}

impl GoEncode for control::CacheOptionsEntry {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let control::CacheOptionsEntry { r#type, attrs } = self;
        enc::string(1, r#type, buf);
        map(2, attrs, buf, enc::value_bytes);
    }
}

impl GoEncode for control::Exporter {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let control::Exporter { r#type, attrs } = self;
        enc::string(1, r#type, buf);
        map(2, attrs, buf, enc::value_bytes);
    }
}

impl GoEncode for sourcepolicy::Policy {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let sourcepolicy::Policy { version, rules } = self;
        enc::int64(1, *version, buf);
        for rule in rules {
            message(2, rule, buf);
        }
    }
}

impl GoEncode for sourcepolicy::Rule {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let sourcepolicy::Rule {
            action,
            selector,
            updates,
        } = self;
        enc::int32(1, *action, buf);
        if let Some(selector) = selector {
            leaf(2, selector, buf);
        }
        if let Some(updates) = updates {
            message(3, updates, buf);
        }
    }
}

impl GoEncode for sourcepolicy::Update {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let sourcepolicy::Update { identifier, attrs } = self;
        enc::string(1, identifier, buf);
        map(2, attrs, buf, enc::value_bytes);
    }
}
