//! The deployment catalogue: which deployments exist, the image repository and tags each
//! follows, and the execution input each deploy starts with (`docs/triggers.md`).
//!
//! ```json
//! {
//!   "defaults": {"strategy": {"type": "canary", "percent": 10}, "timing": {"bakeSeconds": 300}},
//!   "deployments": {
//!     "orders": {
//!       "repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders",
//!       "tags": ["v*"],
//!       "cluster": "prod", "service": "orders", "container": "app",
//!       "listenerArn": "arn:aws:elasticloadbalancing:…:listener/app/prod/…/…",
//!       "targetGroupArns": ["arn:…:targetgroup/orders-a/…", "arn:…:targetgroup/orders-b/…"]
//!     }
//!   }
//! }
//! ```
//!
//! An entry holds every execution input field but `image` (it comes from the push or the
//! request), plus `repository` and `tags`; a field of `defaults` applies to every entry that
//! does not set it (the entry's replaces it whole). Every entry is checked when the document
//! is loaded, with the same checks as an execution input, and an error names the entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::{info, warn};
use wildmatch::WildMatch;

use crate::error::{Error, Result};
use crate::model::{DeployRequest, ImageRef};

/// Environment variable: the catalogue document itself (JSON).
pub const CATALOGUE_VAR: &str = "CATALOGUE";
/// Environment variable: a catalogue file, or a directory whose `*.json` files are each a
/// catalogue document (re-read when one changes).
pub const CATALOGUE_PATH_VAR: &str = "CATALOGUE_PATH";
/// Longest deployment name: it starts every execution name (at most 80 characters).
pub const MAX_NAME_LEN: usize = 32;

/// Fields of an entry that are not execution input fields.
const ENTRY_ONLY: [&str; 2] = ["repository", "tags"];

/// One catalogue document as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    defaults: Map<String, Value>,
    deployments: BTreeMap<String, Value>,
}

/// A deployment of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    /// `registry/repository` whose images it deploys.
    pub repository: String,
    /// Tag filters of pushes (`*` and `?` wildcards); default every tag.
    pub tags: Vec<String>,
    /// The execution input without `image`: defaults merged with the entry's fields.
    input: Map<String, Value>,
    /// Where it was read from (a file, or the environment variable).
    pub source: String,
}

impl Entry {
    /// Whether a push of `tag` to `repository` (`registry/repository`) deploys this entry.
    pub fn follows(&self, repository: &str, tag: &str) -> bool {
        self.repository == repository && self.tags.iter().any(|t| WildMatch::new(t).matches(tag))
    }

    /// Whether `image` comes from the entry's repository.
    pub fn admits(&self, image: &ImageRef) -> bool {
        image.name() == self.repository
    }

    /// The ECS cluster and service it deploys.
    pub fn target(&self) -> (&str, &str) {
        let field = |k: &str| {
            self.input
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        (field("cluster"), field("service"))
    }

    /// The execution input that deploys `image`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `image` is not a valid reference of the entry's
    /// repository.
    pub fn request(&self, image: &str) -> Result<Value> {
        let parsed = ImageRef::parse(image)?;
        if !self.admits(&parsed) {
            return Err(Error::InvalidInput(format!(
                "image {image} is not from {}, the repository deployment {} follows",
                self.repository, self.name
            )));
        }
        let mut input = self.input.clone();
        input.insert("image".into(), Value::String(image.to_string()));
        let value = Value::Object(input);
        DeployRequest::parse(value.clone())?;
        Ok(value)
    }
}

/// The deployments of one or more catalogue documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    entries: BTreeMap<String, Entry>,
}

impl Catalogue {
    /// Parses and checks one catalogue document read from `source`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `source` and the first bad entry and field.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let doc: Document = crate::lambda::parse_payload(
            serde_json::from_str::<Value>(text)
                .map_err(|e| Error::Config(format!("catalogue {source} is not JSON: {e}")))?,
        )
        .map_err(|e| Error::Config(format!("catalogue {source}: {}", inner(&e))))?;
        if let Some(bad) = doc.defaults.keys().find(|k| *k == "image") {
            return Err(Error::Config(format!(
                "catalogue {source}: defaults.{bad}: the image comes from the push or the request, not the catalogue"
            )));
        }
        let mut catalogue = Catalogue::default();
        for (name, fields) in doc.deployments {
            let entry = entry(&name, fields, &doc.defaults, source).map_err(|why| {
                Error::Config(format!("catalogue {source}: deployment {name:?}: {why}"))
            })?;
            catalogue.add(entry)?;
        }
        Ok(catalogue)
    }

    /// Adds `entry`.
    ///
    /// # Errors
    /// [`Error::Config`] when its name is taken, or another entry deploys the same service.
    fn add(&mut self, entry: Entry) -> Result<()> {
        if let Some(other) = self.entries.get(&entry.name) {
            return Err(Error::Config(format!(
                "deployment {:?} is in both {} and {}",
                entry.name, other.source, entry.source
            )));
        }
        let same = |a: &str, b: &str| last_segment(a) == last_segment(b);
        let (cluster, service) = entry.target();
        if let Some(other) = self.entries.values().find(|o| {
            let (c, s) = o.target();
            same(c, cluster) && same(s, service)
        }) {
            return Err(Error::Config(format!(
                "deployments {:?} ({}) and {:?} ({}) both deploy service {service} of cluster {cluster}; one deployment per service",
                other.name, other.source, entry.name, entry.source
            )));
        }
        self.entries.insert(entry.name.clone(), entry);
        Ok(())
    }

    /// Deployment `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Every deployment, by name.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The deployments a push of `tag` to `repository` deploys.
    pub fn following(&self, repository: &str, tag: &str) -> Vec<&Entry> {
        self.entries
            .values()
            .filter(|e| e.follows(repository, tag))
            .collect()
    }

    /// Every deployment name, for messages.
    pub fn names(&self) -> String {
        if self.entries.is_empty() {
            return "the catalogue is empty".into();
        }
        let names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        format!("known deployments: {}", names.join(", "))
    }

    /// Every `registry/repository` some deployment follows, sorted, once each.
    pub fn repositories(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .entries
            .values()
            .map(|e| e.repository.clone())
            .collect();
        r.sort();
        r.dedup();
        r
    }
}

fn inner(e: &Error) -> String {
    match e {
        Error::InvalidInput(m) | Error::Config(m) => m.clone(),
        other => other.to_string(),
    }
}

fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Checks and builds entry `name`.
fn entry(
    name: &str,
    fields: Value,
    defaults: &Map<String, Value>,
    source: &str,
) -> std::result::Result<Entry, String> {
    check_name(name)?;
    let Value::Object(fields) = fields else {
        return Err("must be an object of execution input fields with repository and tags".into());
    };
    if fields.contains_key("image") {
        return Err(
            "image: an entry names its repository; the image comes from the push or the request"
                .into(),
        );
    }
    let mut merged = defaults.clone();
    merged.extend(fields);
    let repository = match merged.remove("repository") {
        Some(Value::String(r)) => r,
        Some(_) => return Err("repository must be a string".into()),
        None => {
            return Err(
                "repository is missing: the registry/repository whose images it deploys".into(),
            );
        }
    };
    let image = ImageRef::parse(&repository).map_err(|e| format!("repository: {}", inner(&e)))?;
    if image.registry.is_none() || image.tag.is_some() || image.digest.is_some() {
        return Err(format!(
            "repository must be registry/repository without tag or digest (e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/orders), got {repository:?}"
        ));
    }
    let tags = match merged.remove("tags") {
        None => vec!["*".to_string()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .into_iter()
            .map(|t| match t {
                Value::String(t) if valid_tag_filter(&t) => Ok(t),
                other => Err(format!(
                    "tags: {other} is not a tag filter (1–128 of A-Z a-z 0-9 _ . - and the wildcards * ?)"
                )),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => return Err("tags must be a non-empty list of tag filters, e.g. [\"v*\"]".into()),
    };
    for field in ENTRY_ONLY {
        merged.remove(field);
    }
    let entry = Entry {
        name: name.to_string(),
        repository: repository.clone(),
        tags,
        input: merged,
        source: source.to_string(),
    };
    // The same checks as an execution input, with a placeholder image of the repository.
    let placeholder = format!("{repository}@sha256:{}", "0".repeat(64));
    entry.request(&placeholder).map_err(|e| inner(&e))?;
    Ok(entry)
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the name must be 1–{MAX_NAME_LEN} of A-Z a-z 0-9 - _, starting with a letter or digit (it starts execution names)"
        ))
    }
}

fn valid_tag_filter(t: &str) -> bool {
    (1..=128).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*' | '?'))
}

/// Where the trigger reads the catalogue from.
#[derive(Debug)]
pub enum CatalogueSource {
    /// The document in [`CATALOGUE_VAR`], read once.
    Inline(Arc<Loaded>),
    /// A file or directory ([`CATALOGUE_PATH_VAR`]), re-read when it changes.
    Path {
        path: PathBuf,
        cache: Mutex<Option<Arc<Loaded>>>,
    },
}

/// The catalogue read from a path, and the files that could not be read.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
    pub catalogue: Catalogue,
    /// One message per file left out, naming it and the error.
    pub problems: Vec<String>,
}

impl CatalogueSource {
    /// The source the environment names: [`CATALOGUE_VAR`] or [`CATALOGUE_PATH_VAR`].
    ///
    /// # Errors
    /// [`Error::Config`] when neither or both is set, or the inline document is invalid.
    pub fn from_env() -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok();
        let set = |name: &str| crate::config::setting(&env, name);
        match (set(CATALOGUE_VAR), set(CATALOGUE_PATH_VAR)) {
            (Some(_), Some(_)) => Err(Error::Config(format!(
                "set {CATALOGUE_VAR} or {CATALOGUE_PATH_VAR}, not both"
            ))),
            (Some(doc), None) => Ok(CatalogueSource::Inline(Arc::new(Loaded {
                catalogue: Catalogue::parse(&doc, CATALOGUE_VAR)?,
                ..Loaded::default()
            }))),
            (None, Some(path)) => Ok(CatalogueSource::at(path)),
            (None, None) => Err(Error::Config(format!(
                "no deployment catalogue: set {CATALOGUE_PATH_VAR} (a file or a directory of *.json) or {CATALOGUE_VAR} (the document)"
            ))),
        }
    }

    /// The catalogue at `path`, a file or a directory of `*.json` files.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        CatalogueSource::Path {
            path: path.into(),
            cache: Mutex::new(None),
        }
    }

    /// The catalogue as it is now: every valid document, and what was left out. Shared, not
    /// copied, while the files stay unchanged.
    ///
    /// # Errors
    /// [`Error::Config`] when the path cannot be read at all.
    pub fn load(&self) -> Result<Arc<Loaded>> {
        match self {
            CatalogueSource::Inline(loaded) => Ok(Arc::clone(loaded)),
            CatalogueSource::Path { path, cache } => {
                let files = files(path)?;
                let fingerprint: Vec<_> = files
                    .iter()
                    .map(|f| {
                        let meta = std::fs::metadata(f).ok();
                        (
                            f.clone(),
                            meta.as_ref().and_then(|m| m.modified().ok()),
                            meta.map_or(0, |m| m.len()),
                        )
                    })
                    .collect();
                let mut cache = cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(loaded) = cache.as_ref().filter(|l| l.fingerprint == fingerprint) {
                    return Ok(Arc::clone(loaded));
                }
                let loaded = Arc::new(read_all(&files, fingerprint));
                info!(
                    path = %path.display(),
                    deployments = loaded.catalogue.entries.len(),
                    problems = loaded.problems.len(),
                    "read the deployment catalogue"
                );
                for p in &loaded.problems {
                    warn!(problem = %p, "a catalogue file is left out");
                }
                *cache = Some(Arc::clone(&loaded));
                Ok(loaded)
            }
        }
    }
}

/// The catalogue files at `path`: itself, or the directory's `*.json` files, sorted.
fn files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Config(format!(
            "{CATALOGUE_PATH_VAR} {}: cannot be read: {e}",
            path.display()
        ))
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| {
            Error::Config(format!(
                "{CATALOGUE_PATH_VAR} {}: cannot be listed: {e}",
                path.display()
            ))
        })?
        .filter_map(|d| d.ok().map(|d| d.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn read_all(files: &[PathBuf], fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>) -> Loaded {
    let mut loaded = Loaded {
        fingerprint,
        ..Loaded::default()
    };
    for file in files {
        let source = file.display().to_string();
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| Error::Config(format!("catalogue {source} cannot be read: {e}")))
            .and_then(|text| Catalogue::parse(&text, &source));
        let catalogue = match parsed {
            Ok(c) => c,
            Err(e) => {
                loaded.problems.push(inner(&e));
                continue;
            }
        };
        // A file whose entries clash with those read before is left out whole.
        let mut merged = loaded.catalogue.clone();
        match catalogue
            .entries
            .into_values()
            .try_for_each(|e| merged.add(e))
        {
            Ok(()) => loaded.catalogue = merged,
            Err(e) => loaded
                .problems
                .push(format!("catalogue {source} is left out: {}", inner(&e))),
        }
    }
    loaded
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders";
    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const TG_A: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-a/73e2d6bc24d8a067";
    const TG_B: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-b/83e2d6bc24d8a067";
    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn orders() -> Value {
        json!({
            "repository": REPO,
            "tags": ["v*"],
            "cluster": "prod",
            "service": "orders",
            "container": "app",
            "listenerArn": LISTENER,
            "targetGroupArns": [TG_A, TG_B]
        })
    }

    fn doc(deployments: Value) -> String {
        json!({"defaults": {"strategy": {"type": "canary", "percent": 10}}, "deployments": deployments})
            .to_string()
    }

    fn error(text: &str) -> String {
        Catalogue::parse(text, "test.json").unwrap_err().to_string()
    }

    #[test]
    fn an_entry_deploys_pushes_of_its_repository_and_tags_with_the_defaults() {
        let c = Catalogue::parse(&doc(json!({"orders": orders()})), "test.json").unwrap();
        let e = c.get("orders").unwrap();
        assert!(e.follows(REPO, "v2"));
        assert!(!e.follows(REPO, "latest"));
        assert!(!e.follows("123456789012.dkr.ecr.us-east-1.amazonaws.com/other", "v2"));
        assert_eq!(c.following(REPO, "v2.1").len(), 1);
        let input = e.request(&format!("{REPO}@{DIGEST}")).unwrap();
        assert_eq!(input["image"], format!("{REPO}@{DIGEST}"));
        assert_eq!(input["strategy"], json!({"type": "canary", "percent": 10}));
        assert!(input.get("repository").is_none() && input.get("tags").is_none());
        assert_eq!(e.target(), ("prod", "orders"));
    }

    #[test]
    fn an_entrys_field_replaces_the_default_whole_and_tags_default_to_every_tag() {
        let mut o = orders();
        o["strategy"] = json!({"type": "allAtOnce"});
        o.as_object_mut().unwrap().remove("tags");
        let c = Catalogue::parse(&doc(json!({"orders": o})), "t").unwrap();
        let e = c.get("orders").unwrap();
        assert!(e.follows(REPO, "anything"));
        let input = e.request(&format!("{REPO}:v1")).unwrap();
        assert_eq!(input["strategy"], json!({"type": "allAtOnce"}));
    }

    #[test]
    fn images_of_another_repository_are_refused_with_the_repository_named() {
        let c = Catalogue::parse(&doc(json!({"orders": orders()})), "t").unwrap();
        let err = c
            .get("orders")
            .unwrap()
            .request("123456789012.dkr.ecr.us-east-1.amazonaws.com/evil:v1")
            .unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains(REPO), "{err}");
    }

    #[test]
    fn every_bad_entry_is_named_with_its_field() {
        let mut bad_strategy = orders();
        bad_strategy["strategy"] = json!({"type": "canary", "percent": 150});
        let e = error(&doc(json!({"orders": bad_strategy})));
        assert!(
            e.contains("deployment \"orders\"") && e.contains("percent"),
            "{e}"
        );

        let mut with_image = orders();
        with_image["image"] = json!("x:1");
        assert!(error(&doc(json!({"orders": with_image}))).contains("image"));

        let mut unknown = orders();
        unknown["colour"] = json!("blue");
        let e = error(&doc(json!({"orders": unknown})));
        assert!(e.contains("colour"), "{e}");

        let mut no_repo = orders();
        no_repo.as_object_mut().unwrap().remove("repository");
        assert!(error(&doc(json!({"orders": no_repo}))).contains("repository is missing"));

        let mut tagged_repo = orders();
        tagged_repo["repository"] = json!(format!("{REPO}:v1"));
        assert!(error(&doc(json!({"orders": tagged_repo}))).contains("without tag"));

        let mut bad_tags = orders();
        bad_tags["tags"] = json!(["v 1"]);
        assert!(error(&doc(json!({"orders": bad_tags}))).contains("tag filter"));

        let mut no_listener = orders();
        no_listener.as_object_mut().unwrap().remove("listenerArn");
        let e = error(&doc(json!({"orders": no_listener})));
        assert!(e.contains("listenerArn"), "{e}");

        let e = error(&doc(json!({"no/slash": orders()})));
        assert!(e.contains("no/slash") && e.contains("name"), "{e}");
        let e = error(&doc(json!({"x".repeat(33): orders()})));
        assert!(e.contains("1–32"), "{e}");

        assert!(error("{").contains("not JSON"));
        assert!(error(r#"{"deployments": {}, "extra": 1}"#).contains("extra"));
        assert!(
            error(r#"{"defaults": {"image": "x"}, "deployments": {}}"#).contains("defaults.image")
        );
    }

    #[test]
    fn two_entries_for_one_service_are_refused() {
        let mut other = orders();
        other["service"] = json!("arn:aws:ecs:us-east-1:123456789012:service/prod/orders");
        let e = error(&doc(json!({"orders": orders(), "orders-again": other})));
        assert!(
            e.contains("orders-again") && e.contains("one deployment per service"),
            "{e}"
        );
    }

    #[test]
    fn a_directory_is_read_file_by_file_and_a_bad_file_is_left_out_alone() {
        let dir = std::env::temp_dir().join(format!("catalogue-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.json"), doc(json!({"orders": orders()}))).unwrap();
        std::fs::write(dir.join("b.json"), "{ not json").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let source = CatalogueSource::at(&dir);
        let loaded = source.load().unwrap();
        assert!(loaded.catalogue.get("orders").is_some());
        assert_eq!(loaded.problems.len(), 1);
        assert!(
            loaded.problems[0].contains("b.json"),
            "{:?}",
            loaded.problems
        );

        // A file with the same deployment is left out; the first stays.
        std::fs::write(dir.join("b.json"), doc(json!({"orders": orders()}))).unwrap();
        let loaded = source.load().unwrap();
        assert!(
            loaded.problems[0].contains("in both"),
            "{:?}",
            loaded.problems
        );
        assert!(loaded.catalogue.get("orders").is_some());

        // Unchanged files are not read again: the same catalogue is shared.
        assert!(Arc::ptr_eq(&loaded, &source.load().unwrap()));

        // A change is seen at the next load.
        std::fs::remove_file(dir.join("b.json")).unwrap();
        std::fs::remove_file(dir.join("a.json")).unwrap();
        let loaded = source.load().unwrap();
        assert!(loaded.catalogue.get("orders").is_none() && loaded.problems.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = CatalogueSource::at("/nonexistent/catalogue.json").load();
        assert!(missing.unwrap_err().to_string().contains("CATALOGUE_PATH"));
    }
}
