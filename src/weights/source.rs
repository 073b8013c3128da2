//! Where weights come from: a local path or `hf://org/name[@revision]/file`, resolved through
//! the Hugging Face cache and, unless HF_HUB_OFFLINE is set, the Hub. The environment is read as
//! `huggingface_hub` reads it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_ENDPOINT, HF_TOKEN,
//! HF_TOKEN_PATH, HF_HUB_OFFLINE), so a cache or token set up for Python tools works here too.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use super::WeightsError;

/// A weights location as written on the command line or in an experiment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    Local(PathBuf),
    Hub { repo: String, revision: String, file: String },
}

impl WeightsSource {
    /// Parses `hf://org/name[@revision]/path/in/repo` or a local path.
    pub fn parse(spec: &str) -> Result<Self, WeightsError> {
        let Some(rest) = spec.strip_prefix("hf://") else {
            return Ok(WeightsSource::Local(PathBuf::from(spec)));
        };
        let bad = |reason: &str| WeightsError::BadSource { spec: spec.to_string(), reason: reason.to_string() };
        let mut parts = rest.splitn(3, '/');
        let (Some(org), Some(name_rev), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected hf://org/name[@revision]/file.safetensors"));
        };
        let (name, revision) = match name_rev.split_once('@') {
            Some((name, rev)) => (name, rev),
            None => (name_rev, "main"),
        };
        if org.is_empty() || name.is_empty() {
            return Err(bad("the repository must be `org/name`"));
        }
        if revision.is_empty() {
            return Err(bad("empty revision after `@`"));
        }
        if file.is_empty() || file.ends_with('/') {
            return Err(bad("no file named after the repository"));
        }
        Ok(WeightsSource::Hub { repo: format!("{org}/{name}"), revision: revision.to_string(), file: file.to_string() })
    }

    /// The local file holding these weights, downloading into the cache when allowed.
    pub fn resolve(&self, hub: &HubSettings) -> Result<PathBuf, WeightsError> {
        match self {
            WeightsSource::Local(path) => {
                if path.is_file() {
                    Ok(path.clone())
                } else {
                    Err(WeightsError::Io {
                        path: path.clone(),
                        error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                    })
                }
            }
            WeightsSource::Hub { repo, revision, file } => {
                if let Some(path) = hub.cached(repo, revision, file) {
                    return Ok(path);
                }
                if hub.offline {
                    return Err(WeightsError::NotCached {
                        spec: self.to_string(),
                        cache: hub.cache_dir.clone(),
                        expected: hub.repo_dir(repo).join("snapshots").join("<commit>").join(file),
                        command: download_command(repo, revision, file),
                    });
                }
                hub.download(repo, revision, file)
                    .map_err(|e| WeightsError::Download { spec: self.to_string(), reason: e })
            }
        }
    }
}

impl std::fmt::Display for WeightsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightsSource::Local(path) => write!(f, "{}", path.display()),
            WeightsSource::Hub { repo, revision, file } if revision == "main" => write!(f, "hf://{repo}/{file}"),
            WeightsSource::Hub { repo, revision, file } => write!(f, "hf://{repo}@{revision}/{file}"),
        }
    }
}

/// The command of the current Hugging Face CLI that puts `file` of `repo` into the cache:
/// `hf download ORG/NAME FILE`, with `--revision` when it is not `main`.
pub fn download_command(repo: &str, revision: &str, file: &str) -> String {
    if revision == "main" {
        format!("hf download {repo} {file}")
    } else {
        format!("hf download {repo} {file} --revision {revision}")
    }
}

/// huggingface_hub's default endpoint, used when HF_ENDPOINT is unset.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How the Hugging Face cache is found, where the Hub is, which token to send and whether the
/// network may be used. Read from the environment once ([`HubSettings::from_env`]); tests build
/// it directly ([`HubSettings::offline_at`]) or from a variable table ([`HubSettings::from_vars`]).
#[derive(Clone, PartialEq, Eq)]
pub struct HubSettings {
    pub cache_dir: PathBuf,
    pub offline: bool,
    /// The Hub's base address, without a trailing `/` (HF_ENDPOINT, e.g. a mirror).
    pub endpoint: String,
    /// The access token sent with downloads (HF_TOKEN, else the token file).
    pub token: Option<String>,
}

/// The token is a secret: Debug shows only whether there is one.
impl std::fmt::Debug for HubSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSettings")
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl HubSettings {
    /// A cache at `cache_dir` that must not touch the network: the default endpoint, no token.
    pub fn offline_at(cache_dir: impl Into<PathBuf>) -> Self {
        Self { cache_dir: cache_dir.into(), offline: true, endpoint: DEFAULT_ENDPOINT.into(), token: None }
    }

    /// The process environment under huggingface_hub's rules (see [`HubSettings::from_vars`]).
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// huggingface_hub's rules (`huggingface_hub/constants.py`), given a variable lookup:
    /// - HF_HOME, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`;
    /// - the cache: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE (its older name), else `$HF_HOME/hub`;
    /// - HF_ENDPOINT (trailing `/` removed), else `https://huggingface.co`;
    /// - the token: HF_TOKEN, else the first line of the file HF_TOKEN_PATH, else `$HF_HOME/token`
    ///   (blank means none);
    /// - HF_HUB_OFFLINE=1 (or true/yes/on, any case) forbids downloads.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
                let home = var("HOME").unwrap_or_else(|| ".".to_string());
                Path::new(&home).join(".cache")
            });
            cache.join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let endpoint = var("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| hf_home.join("token"));
            // An absent or unreadable token file means no token, as in huggingface_hub.
            std::fs::read_to_string(path).ok()
        });
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Self { cache_dir, offline, endpoint, token }
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.cache_dir.join(format!("models--{}", repo.replace('/', "--")))
    }

    /// The cached file, if present: through `refs/<revision>` for a branch or tag, or
    /// `snapshots/<revision>` when the revision is a commit hash.
    fn cached(&self, repo: &str, revision: &str, file: &str) -> Option<PathBuf> {
        let cache = Cache::new(self.cache_dir.clone());
        let repo_handle = cache.repo(Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string()));
        repo_handle.get(file).or_else(|| {
            let path = self.repo_dir(repo).join("snapshots").join(revision).join(file);
            path.is_file().then_some(path)
        })
    }

    fn download(&self, repo: &str, revision: &str, file: &str) -> Result<PathBuf, String> {
        let api = hf_hub::api::sync::ApiBuilder::from_cache(Cache::new(self.cache_dir.clone()))
            .with_progress(!crate::progress::quiet())
            .with_endpoint(self.endpoint.clone())
            .with_token(self.token.clone())
            .build()
            .map_err(|e| e.to_string())?;
        api.repo(Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string()))
            .get(file)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_and_local_sources() {
        assert_eq!(
            WeightsSource::parse("hf://timm/resnet50.a1_in1k/model.safetensors").unwrap(),
            WeightsSource::Hub {
                repo: "timm/resnet50.a1_in1k".into(),
                revision: "main".into(),
                file: "model.safetensors".into()
            }
        );
        assert_eq!(
            WeightsSource::parse("hf://org/name@v1.0/sub/dir/w.safetensors").unwrap(),
            WeightsSource::Hub {
                repo: "org/name".into(),
                revision: "v1.0".into(),
                file: "sub/dir/w.safetensors".into()
            }
        );
        assert_eq!(WeightsSource::parse("a/b.safetensors").unwrap(), WeightsSource::Local("a/b.safetensors".into()));
        for bad in ["hf://org/name", "hf://org", "hf:///name/f", "hf://org/name@/f", "hf://org/name/"] {
            let err = WeightsSource::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn environment_follows_huggingface_hub_rules() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let online = |cache_dir: &str| HubSettings { offline: false, ..HubSettings::offline_at(cache_dir) };
        // HOME of a user without a token file (the path does not exist).
        let s = HubSettings::from_vars(vars(&[("HOME", "/nonexistent/u")]));
        assert_eq!(s, online("/nonexistent/u/.cache/huggingface/hub"));
        let s = HubSettings::from_vars(vars(&[("HF_HOME", "/nonexistent/hf"), ("HF_HUB_OFFLINE", "1")]));
        assert_eq!(s, HubSettings::offline_at("/nonexistent/hf/hub"));
        let s = HubSettings::from_vars(vars(&[
            ("HF_HOME", "/nonexistent/hf"),
            ("HF_HUB_CACHE", "/c"),
            ("HF_HUB_OFFLINE", "0"),
        ]));
        assert_eq!(s, online("/c"));
    }

    #[test]
    fn download_command_is_the_current_cli() {
        assert_eq!(
            download_command("timm/resnet50.a1_in1k", "main", "model.safetensors"),
            "hf download timm/resnet50.a1_in1k model.safetensors"
        );
        assert_eq!(download_command("o/n", "v1.0", "w.safetensors"), "hf download o/n w.safetensors --revision v1.0");
    }

    #[test]
    fn debug_hides_the_token() {
        let s = HubSettings { token: Some("hf_secret".into()), ..HubSettings::offline_at("/c") };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hf_secret") && shown.contains("<set>"), "{shown}");
    }
}
