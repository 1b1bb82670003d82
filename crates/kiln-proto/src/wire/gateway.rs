//! `moby.buildkit.v1.frontend` (gateway.proto): the LLBBridge requests kiln
//! sends that hold maps, definitions or the `Result` oneof. `InTotoSubject`
//! and `google.rpc.Status` have neither and are written by prost; `Ping` and
//! `ReadFile` requests go through prost's codec.

use super::definition::{definition_field, DefinitionBytes, WithDefinition};
use super::enc::{self, leaf, len_delimited, map, message};
use super::GoEncode;
use crate::gateway;

/// The gateway's `SolveRequest` with `definition` in place of `req.definition`.
fn solve_request(
    req: &gateway::SolveRequest,
    definition: Option<&DefinitionBytes>,
    buf: &mut Vec<u8>,
) {
    let gateway::SolveRequest {
        definition: own_definition,
        frontend,
        frontend_opt,
        allow_result_return,
        allow_result_array_ref,
        r#final,
        exporter_attr,
        cache_imports,
        frontend_inputs,
        evaluate,
        source_policies,
    } = req;
    definition_field(1, definition, own_definition.as_ref(), buf);
    enc::string(2, frontend, buf);
    map(3, frontend_opt, buf, enc::value_bytes);
    enc::bool(5, *allow_result_return, buf);
    enc::bool(6, *allow_result_array_ref, buf);
    enc::bool(10, *r#final, buf);
    enc::bytes(11, exporter_attr, buf);
    for entry in cache_imports {
        message(12, entry, buf);
    }
    map(13, frontend_inputs, buf, enc::value_message);
    enc::bool(14, *evaluate, buf);
    for policy in source_policies {
        message(15, policy, buf);
    }
}

impl GoEncode for gateway::SolveRequest {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        solve_request(self, None, buf);
    }
}

impl GoEncode for WithDefinition<gateway::SolveRequest> {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        solve_request(&self.request, self.definition.as_ref(), buf);
    }
}

impl GoEncode for gateway::CacheOptionsEntry {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::CacheOptionsEntry { r#type, attrs } = self;
        enc::string(1, r#type, buf);
        map(2, attrs, buf, enc::value_bytes);
    }
}

impl GoEncode for gateway::ReturnRequest {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::ReturnRequest { result, error } = self;
        if let Some(result) = result {
            message(1, result, buf);
        }
        if let Some(error) = error {
            leaf(2, error, buf);
        }
    }
}

impl GoEncode for gateway::Result {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::Result {
            metadata,
            attestations,
            result,
        } = self;
        map(10, metadata, buf, enc::value_bytes);
        map(12, attestations, buf, enc::value_message);
        // The oneof last, as Go writes it; a member is written even when
        // empty (a oneof field has presence).
        match result {
            None => {}
            Some(gateway::result::Result::RefDeprecated(id)) => {
                len_delimited(1, id.as_bytes(), buf)
            }
            Some(gateway::result::Result::RefsDeprecated(refs)) => message(2, refs, buf),
            Some(gateway::result::Result::Ref(r)) => message(3, r, buf),
            Some(gateway::result::Result::Refs(refs)) => message(4, refs, buf),
        }
    }
}

impl GoEncode for gateway::RefMapDeprecated {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::RefMapDeprecated { refs } = self;
        map(1, refs, buf, enc::value_bytes);
    }
}

impl GoEncode for gateway::Ref {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::Ref { id, def } = self;
        enc::string(1, id, buf);
        if let Some(def) = def {
            message(2, def, buf);
        }
    }
}

impl GoEncode for gateway::RefMap {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::RefMap { refs } = self;
        map(1, refs, buf, enc::value_message);
    }
}

impl GoEncode for gateway::Attestations {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::Attestations { attestation } = self;
        for a in attestation {
            message(1, a, buf);
        }
    }
}

impl GoEncode for gateway::Attestation {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::Attestation {
            kind,
            metadata,
            r#ref,
            path,
            in_toto_predicate_type,
            in_toto_subjects,
        } = self;
        enc::int32(1, *kind, buf);
        map(2, metadata, buf, enc::value_bytes);
        if let Some(r) = r#ref {
            message(3, r, buf);
        }
        enc::string(4, path, buf);
        enc::string(5, in_toto_predicate_type, buf);
        for subject in in_toto_subjects {
            leaf(6, subject, buf);
        }
    }
}

impl GoEncode for gateway::ResolveImageConfigRequest {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        let gateway::ResolveImageConfigRequest {
            r#ref,
            platform,
            resolve_mode,
            log_name,
            resolver_type,
            session_id,
            store_id,
            source_policies,
        } = self;
        enc::string(1, r#ref, buf);
        if let Some(platform) = platform {
            leaf(2, platform, buf);
        }
        enc::string(3, resolve_mode, buf);
        enc::string(4, log_name, buf);
        enc::int32(5, *resolver_type, buf);
        enc::string(6, session_id, buf);
        enc::string(7, store_id, buf);
        for policy in source_policies {
            message(8, policy, buf);
        }
    }
}
