//! Where weights come from: a local path or `hf://org/name[@revision]/file`, resolved through
//! the Hugging Face cache (HF_HUB_CACHE, HF_HOME) and, unless HF_HUB_OFFLINE is set, the Hub.

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

/// How the Hugging Face cache is found and whether the network may be used. Read from the
/// environment once ([`HubSettings::from_env`]); tests build it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    pub cache_dir: PathBuf,
    pub offline: bool,
}

impl HubSettings {
    /// huggingface_hub's rules: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub;
    /// HF_HUB_OFFLINE=1 (or true/yes/on) forbids downloads.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|home| Path::new(&home).join("hub")))
            .unwrap_or_else(|| {
                let home = var("HOME").unwrap_or_else(|| ".".to_string());
                Path::new(&home).join(".cache").join("huggingface").join("hub")
            });
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Self { cache_dir, offline }
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
            .with_progress(true)
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
        let s = HubSettings::from_vars(vars(&[("HOME", "/home/u")]));
        assert_eq!(s, HubSettings { cache_dir: "/home/u/.cache/huggingface/hub".into(), offline: false });
        let s = HubSettings::from_vars(vars(&[("HF_HOME", "/hf"), ("HF_HUB_OFFLINE", "1")]));
        assert_eq!(s, HubSettings { cache_dir: "/hf/hub".into(), offline: true });
        let s = HubSettings::from_vars(vars(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c"), ("HF_HUB_OFFLINE", "0")]));
        assert_eq!(s, HubSettings { cache_dir: "/c".into(), offline: false });
    }
}
