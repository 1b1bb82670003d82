//! Source maps: which lines of a build file produced which op (Go's
//! `llb.SourceMap` and `SourceLocation`), shown by the daemon in errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_proto::pb;

/// A source file the graph was built from. Cheap to clone; two clones are
/// the same source map (identity, not content, decides, as in Go).
///
/// ```
/// use kiln_llb::{FileOptions, Mkdir, Range, SourceMap};
/// let map = SourceMap::new("kiln.toml", b"[build]\n".to_vec()).language("toml");
/// let here = map.location([Range::lines(1, 1)]);
/// let st = kiln_llb::scratch().file_with(Mkdir::new("/x", 0o755), FileOptions::new().location(here));
/// # let _ = st;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SourceMap(Arc<SourceMapInner>);

#[derive(Clone, Debug, PartialEq)]
struct SourceMapInner {
    filename: String,
    language: String,
    data: Vec<u8>,
    definition: Option<pb::Definition>,
}

impl SourceMap {
    /// A source map for `filename` with its contents.
    pub fn new(filename: impl Into<String>, data: Vec<u8>) -> Self {
        SourceMap(Arc::new(SourceMapInner {
            filename: filename.into(),
            language: String::new(),
            data,
            definition: None,
        }))
    }

    /// Sets the language (e.g. `Dockerfile`), used by clients to highlight.
    pub fn language(self, language: &str) -> Self {
        let mut m = Arc::unwrap_or_clone(self.0);
        m.language = language.to_string();
        SourceMap(Arc::new(m))
    }

    /// Attaches the definition that produced the file (Go's `SourceMap.Definition`).
    pub fn definition(self, def: &crate::Definition) -> Self {
        let mut m = Arc::unwrap_or_clone(self.0);
        m.definition = Some(def.as_pb().clone());
        SourceMap(Arc::new(m))
    }

    /// A location in this file covering `ranges`.
    pub fn location<I: IntoIterator<Item = Range>>(&self, ranges: I) -> SourceLocation {
        SourceLocation {
            map: self.clone(),
            ranges: ranges.into_iter().collect(),
        }
    }
}

/// A line/character range in a source file (1-based lines, as BuildKit uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start_line: i32,
    pub start_character: i32,
    pub end_line: i32,
    pub end_character: i32,
}

impl Range {
    /// Whole lines `start..=end`.
    pub fn lines(start: i32, end: i32) -> Self {
        Range {
            start_line: start,
            start_character: 0,
            end_line: end,
            end_character: 0,
        }
    }

    fn to_pb(self) -> pb::Range {
        pb::Range {
            start: Some(pb::Position {
                line: self.start_line,
                character: self.start_character,
            }),
            end: Some(pb::Position {
                line: self.end_line,
                character: self.end_character,
            }),
        }
    }
}

/// A place in a [`SourceMap`], attached to an op with `.location(…)`.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceLocation {
    pub(crate) map: SourceMap,
    pub(crate) ranges: Vec<Range>,
}

/// Go's `sourceMapCollector`: source maps in order of first use (by
/// identity), and for each the ranges of every op digest that names it.
#[derive(Default)]
pub(crate) struct Collector {
    maps: Vec<(SourceMap, BTreeMap<String, Vec<Range>>)>,
}

impl Collector {
    pub fn add(&mut self, digest: &str, locations: &[SourceLocation]) {
        for l in locations {
            let idx = match self
                .maps
                .iter()
                .position(|(m, _)| Arc::ptr_eq(&m.0, &l.map.0))
            {
                Some(i) => i,
                None => {
                    self.maps.push((l.map.clone(), BTreeMap::new()));
                    self.maps.len() - 1
                }
            };
            self.maps[idx]
                .1
                .insert(digest.to_string(), l.ranges.clone());
        }
    }

    pub fn into_pb(self) -> pb::Source {
        let mut source = pb::Source::default();
        for (i, (map, ranges)) in self.maps.into_iter().enumerate() {
            source.infos.push(pb::SourceInfo {
                filename: map.0.filename.clone(),
                data: map.0.data.clone(),
                definition: map.0.definition.clone(),
                language: map.0.language.clone(),
            });
            for (digest, ranges) in ranges {
                source
                    .locations
                    .entry(digest)
                    .or_default()
                    .locations
                    .push(pb::Location {
                        source_index: i32::try_from(i).unwrap_or(i32::MAX),
                        ranges: ranges.into_iter().map(Range::to_pb).collect(),
                    });
            }
        }
        source
    }
}
