//! Opens the HTML report of a two-epoch run in headless Chromium (Debian's `chromium` package):
//! every image must load and the page must log no error. A screenshot of the page is written to
//! `target/tmp/report-screenshot/report.png` for people to look at.
//!
//! Without Chromium the test fails when `CI=true` (so CI never passes without running it) and is
//! skipped with a message otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Flags that keep Chromium from using a GPU, a sandbox, the network or the user's profile.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Script put at the top of a copy of the page: records script errors, console errors and
/// resources that fail to load, then after the load event lists the images that did not
/// decode, as JSON in an element `#check` that `--dump-dom` prints.
const CHECK_SCRIPT: &str = r#"<script>
window.failures = [];
window.addEventListener('error', function (event) {
  var target = event.target;
  var name = target && target.src ? 'failed to load ' + target.src : 'error ' + event.message;
  window.failures.push(name);
}, true);
var originalError = console.error;
console.error = function () {
  window.failures.push('console.error ' + Array.prototype.join.call(arguments, ' '));
  originalError.apply(console, arguments);
};
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  images.forEach(function (image) {
    if (!image.complete || image.naturalWidth === 0) {
      window.failures.push('image not decoded ' + image.getAttribute('src'));
    }
  });
  var check = document.createElement('pre');
  check.id = 'check';
  check.textContent = JSON.stringify({ images: images.length, failures: window.failures });
  document.body.appendChild(check);
});
</script>"#;

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn deepcluster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepcluster"))
        .args(args)
        .output()
        .expect("the deepcluster binary runs")
}

fn chromium(binary: &Path, profile: &Path, args: &[&str]) -> Output {
    let profile_flag = format!("--user-data-dir={}", profile.display());
    Command::new(binary)
        .args(CHROMIUM_FLAGS)
        .arg(profile_flag)
        .args(args)
        .output()
        .expect("chromium runs")
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

#[test]
fn report_renders_in_chromium() {
    let Some(binary) = find_chromium() else {
        let message = "chromium not found on PATH; install Debian's `chromium` package";
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!("{message} (CI=true, so this test cannot be skipped)");
        }
        eprintln!("SKIPPED report_renders_in_chromium: {message}");
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_text = run.to_str().unwrap();
    let output = deepcluster(&[
        "train",
        "--out",
        run_text,
        "--max-images",
        "200",
        "--width",
        "0.125",
        "-k",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--pca-dim",
        "16",
        "-q",
        "--report",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = run.join("report");
    let page = report.join("index.html");
    assert!(page.is_file(), "train --report wrote no {}", page.display());

    // Check a copy of the page with the script added, beside the original so that the
    // relative image paths resolve the same way.
    let html = std::fs::read_to_string(&page).unwrap();
    let checked = html.replacen("<head>", &format!("<head>\n{CHECK_SCRIPT}"), 1);
    let check_page = report.join("check.html");
    std::fs::write(&check_page, checked).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let output = chromium(
        &binary,
        profile.path(),
        &[
            "--virtual-time-budget=10000",
            "--dump-dom",
            &file_url(&check_page),
        ],
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"check\">").unwrap_or_else(|| {
        panic!(
            "no check result in the page; chromium stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let rest = &dom[start + "<pre id=\"check\">".len()..];
    let json = rest[..rest.find("</pre>").unwrap()].replace("&quot;", "\"");
    let result: serde_json::Value = serde_json::from_str(&json).unwrap();
    let n_images = result["images"].as_u64().unwrap();
    assert!(n_images >= 8, "only {n_images} images on the page");
    assert_eq!(result["failures"], serde_json::json!([]), "{json}");

    // A screenshot people can look at.
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot");
    std::fs::create_dir_all(&screenshots).unwrap();
    let screenshot = screenshots.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    let screenshot_flag = format!("--screenshot={}", screenshot.display());
    let output = chromium(
        &binary,
        profile.path(),
        &[
            &screenshot_flag,
            "--window-size=1280,2400",
            &file_url(&page),
        ],
    );
    assert!(
        screenshot.is_file(),
        "no screenshot; chromium stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let image = image::open(&screenshot).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (1280, 2400));
    assert!(
        image.pixels().any(|p| p != image.get_pixel(0, 0)),
        "blank screenshot"
    );
    eprintln!("report screenshot: {}", screenshot.display());
}
