//! `hf://` weights resolved through a Hugging Face cache laid out as huggingface_hub lays it
//! out, without network (HF_HUB_OFFLINE semantics).

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, expected, fixture, input, tensor};
use resnet_audit::model::ResNetConfig;
use resnet_audit::weights::{load_resnet, HubSettings, LoadOptions, WeightsError, WeightsFile, WeightsSource};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// models--org--tiny-resnet/{refs/main, refs/v1.0, snapshots/<commit>/weights/model.safetensors}
fn make_cache() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("models--org--tiny-resnet");
    let snapshot = repo.join("snapshots").join(COMMIT).join("weights");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    std::fs::write(repo.join("refs/v1.0"), COMMIT).unwrap();
    let file = snapshot.join("model.safetensors");
    std::fs::copy(fixture("parity/resnet18_w8.safetensors"), &file).unwrap();
    (dir, file)
}

fn offline(cache: &Path) -> HubSettings {
    HubSettings::offline_at(cache)
}

#[test]
fn hub_weights_resolve_from_the_cache_and_match_pytorch() {
    let (cache, file) = make_cache();
    let source = WeightsSource::parse("hf://org/tiny-resnet/weights/model.safetensors").unwrap();
    let path = source.resolve(&offline(cache.path())).unwrap();
    assert_eq!(path, file);
    let config = ResNetConfig::imagenet(18, 17).with_base_width(8);
    let model = load_resnet(&WeightsFile::read(&path).unwrap(), &config, &LoadOptions::default()).unwrap();
    let logits = model.forward(&input("x224")).unwrap();
    assert_close(&logits, &tensor(&expected("resnet18_w8"), "logits_x224"), 1e-4, "hub-loaded resnet18");
}

#[test]
fn revisions_resolve_through_refs_or_commit_hashes() {
    let (cache, file) = make_cache();
    for spec in [
        "hf://org/tiny-resnet@v1.0/weights/model.safetensors".to_string(),
        format!("hf://org/tiny-resnet@{COMMIT}/weights/model.safetensors"),
    ] {
        let path = WeightsSource::parse(&spec).unwrap().resolve(&offline(cache.path())).unwrap();
        assert_eq!(path, file, "{spec}");
    }
}

#[test]
fn offline_and_not_cached_is_a_clear_error() {
    let (cache, _) = make_cache();
    for spec in [
        "hf://org/tiny-resnet@v2.0/weights/model.safetensors",
        "hf://org/tiny-resnet/weights/other.safetensors",
        "hf://org/absent/model.safetensors",
    ] {
        let err = WeightsSource::parse(spec).unwrap().resolve(&offline(cache.path())).unwrap_err();
        assert!(matches!(err, WeightsError::NotCached { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(spec) && message.contains(&cache.path().display().to_string()), "{message}");
        assert!(message.contains("HF_HUB_OFFLINE"), "{message}");
    }
}

/// A variable table standing in for the process environment (tests run in parallel, so they do
/// not set real variables).
fn vars(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
}

#[test]
fn xdg_cache_home_places_the_cache_and_token_file_as_huggingface_hub_does() {
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("huggingface")).unwrap();
    std::fs::write(xdg.path().join("huggingface/token"), "hf_from_file\n").unwrap();
    let s = HubSettings::from_vars(vars(vec![
        ("HOME", "/nonexistent/home".into()),
        ("XDG_CACHE_HOME", xdg.path().display().to_string()),
    ]));
    assert_eq!(s.cache_dir, xdg.path().join("huggingface/hub"));
    assert_eq!(s.token.as_deref(), Some("hf_from_file"), "the token file under $XDG_CACHE_HOME/huggingface");
    // HF_HOME wins over XDG_CACHE_HOME, and HF_HUB_CACHE over both.
    let s = HubSettings::from_vars(vars(vec![
        ("XDG_CACHE_HOME", xdg.path().display().to_string()),
        ("HF_HOME", "/nonexistent/hf".into()),
    ]));
    assert_eq!(s.cache_dir, PathBuf::from("/nonexistent/hf/hub"));
    assert_eq!(s.token, None, "no token file under HF_HOME");
    let s = HubSettings::from_vars(vars(vec![
        ("XDG_CACHE_HOME", xdg.path().display().to_string()),
        ("HF_HUB_CACHE", "/nonexistent/cache".into()),
    ]));
    assert_eq!(s.cache_dir, PathBuf::from("/nonexistent/cache"));
}

#[test]
fn hf_token_wins_over_token_files_and_blank_means_none() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("token"), "hf_file").unwrap();
    std::fs::write(home.path().join("other-token"), "  hf_other  \n").unwrap();
    let hf_home = home.path().display().to_string();
    let with = |extra: Vec<(&'static str, String)>| {
        let mut pairs = vec![("HF_HOME", hf_home.clone())];
        pairs.extend(extra);
        HubSettings::from_vars(vars(pairs)).token
    };
    assert_eq!(with(vec![]).as_deref(), Some("hf_file"));
    assert_eq!(with(vec![("HF_TOKEN", "hf_env".into())]).as_deref(), Some("hf_env"));
    let other = home.path().join("other-token").display().to_string();
    assert_eq!(with(vec![("HF_TOKEN_PATH", other)]).as_deref(), Some("hf_other"));
    assert_eq!(with(vec![("HF_TOKEN", "   ".into())]), None);
}

#[test]
fn hf_endpoint_loses_its_trailing_slash_and_defaults_to_the_hub() {
    let s = HubSettings::from_vars(vars(vec![("HF_HOME", "/nonexistent".into())]));
    assert_eq!(s.endpoint, "https://huggingface.co");
    let s = HubSettings::from_vars(vars(vec![
        ("HF_HOME", "/nonexistent".into()),
        ("HF_ENDPOINT", "https://hf-mirror.example/".into()),
    ]));
    assert_eq!(s.endpoint, "https://hf-mirror.example");
}

/// A one-connection HTTP server on localhost answering 404: returns its address and the request
/// head (request line and headers) it received.
fn one_request_server() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head += &line;
        }
        let mut stream = stream;
        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        head
    });
    (address, handle)
}

#[test]
fn downloads_go_to_hf_endpoint_with_hf_token() {
    let cache = tempfile::tempdir().unwrap();
    let (endpoint, server) = one_request_server();
    let settings = HubSettings::from_vars(vars(vec![
        ("HF_HUB_CACHE", cache.path().display().to_string()),
        ("HF_ENDPOINT", format!("{endpoint}/")),
        ("HF_TOKEN", "hf_test_token".into()),
    ]));
    let err = WeightsSource::parse("hf://org/tiny-resnet/model.safetensors").unwrap().resolve(&settings).unwrap_err();
    assert!(matches!(err, WeightsError::Download { .. }), "{err}");
    let head = server.join().unwrap();
    let request_line = head.lines().next().unwrap_or_default();
    assert!(request_line.contains("/org/tiny-resnet/resolve/main/model.safetensors"), "{head}");
    assert!(head.to_ascii_lowercase().contains("authorization: bearer hf_test_token"), "{head}");
}

#[test]
fn offline_miss_names_the_hf_download_command() {
    let (cache, _) = make_cache();
    let err = WeightsSource::parse("hf://org/absent@v2/model.safetensors")
        .unwrap()
        .resolve(&offline(cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`hf download org/absent model.safetensors --revision v2`"), "{err}");
}

/// Every experiment that reads `hf://ORG/NAME/FILE` weights tells how to fetch them with the
/// current Hugging Face CLI: `obtain: hf download ORG/NAME FILE`.
#[test]
fn experiments_obtain_hub_weights_with_hf_download() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("huggingface-cli"), "{}: the retired CLI name", path.display());
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(spec) = line.strip_prefix("weights: hf://") else { continue };
            let spec = spec.split_whitespace().next().unwrap();
            let (repo, file) = {
                let mut parts = spec.splitn(3, '/');
                let (org, name, file) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
                (format!("{org}/{}", name.split('@').next().unwrap()), file.to_string())
            };
            let obtain = lines[i + 1..].iter().take_while(|l| !l.starts_with("- ")).find(|l| l.starts_with("obtain:"));
            let want = format!("obtain: hf download {repo} {file}");
            assert!(
                obtain.is_some_and(|o| o.starts_with(&want)),
                "{}: hf://{spec} should come with `{want}`, found {obtain:?}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no experiment reads hub weights");
}
