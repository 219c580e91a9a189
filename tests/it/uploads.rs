//! Runs from uploaded documents, on both backends, through a real server on 127.0.0.1: each
//! format extracted into its blocks, the upload keys refusing an upload with nothing written
//! (and admitting it once a superuser raises them, for new runs only), content that does not
//! match its extension, the page's form with and without JavaScript, and the CLI.

use std::collections::HashMap;
use std::process::Command;

use runtime_policy::auth::password::NewPassword;
use runtime_policy::auth::token::{create_token, Grant, TokenName};
use runtime_policy::auth::types::Role;
use runtime_policy::auth::users::{create_user, Email};
use runtime_policy::paths;
use runtime_policy::policy::store::{Actor, PolicyStore};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{self, spawn_app};

fn store(t: &helpers::TestDb) -> PolicyStore {
    PolicyStore::new(t.db.clone(), HashMap::new())
}

fn admin() -> Actor {
    Actor::user(1, "root@example.com")
}

/// A `multipart/form-data` body with each file as a part named `files`.
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----runtime-policy-test-boundary-7d1";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A PDF with one page per text, each drawn in a standard font.
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for text in pages {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new("Tj", vec![Object::string_literal(*text)]),
                Operation::new("ET", vec![]),
            ],
        };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// A DOCX document with these paragraphs, then a one-row table of these cells.
pub fn docx(paragraphs: &[&str], cells: &[&str]) -> Vec<u8> {
    use docx_rs::{Docx, Paragraph, Run, Table, TableCell, TableRow};
    let mut doc = Docx::new();
    for p in paragraphs {
        doc = doc.add_paragraph(Paragraph::new().add_run(Run::new().add_text(*p)));
    }
    if !cells.is_empty() {
        let row = TableRow::new(
            cells
                .iter()
                .map(|c| TableCell::new().add_paragraph(Paragraph::new().add_run(Run::new().add_text(*c))))
                .collect(),
        );
        doc = doc.add_table(Table::new(vec![row]));
    }
    let mut out = std::io::Cursor::new(Vec::new());
    doc.build().pack(&mut out).unwrap();
    out.into_inner()
}

struct Sent {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Sent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

async fn post(url: &str, headers: &[(&str, &str)], content_type: &str, body: Vec<u8>) -> Sent {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = client.post(url).header("content-type", content_type).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    Sent { status, location, body: res.text().await.unwrap() }
}

async fn upload_api(base: &str, token: &str, files: &[(&str, &[u8])]) -> Sent {
    let (ct, body) = multipart(files);
    let bearer = format!("Bearer {token}");
    post(&format!("{base}{}", paths::API_RUNS), &[("authorization", &bearer)], &ct, body).await
}

/// What is stored of every run: runs, files and blocks.
async fn stored(t: &helpers::TestDb) -> (i64, i64, i64) {
    let count = |table: &'static str| async move {
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(&t.db.pool)
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap()
    };
    (count("runs").await, count("run_files").await, count("blocks").await)
}

/// A run's blocks as (file_index, file_position, text), in block_index order.
async fn run_blocks(t: &helpers::TestDb, run: i64) -> Vec<(Option<i64>, Option<i64>, String)> {
    sqlx::query("SELECT file_index, file_position, text FROM blocks WHERE run_id = $1 ORDER BY block_index")
        .bind(run)
        .fetch_all(&t.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get("file_index").unwrap(), r.try_get("file_position").unwrap(), r.try_get("text").unwrap()))
        .collect()
}

/// Files by name, as an upload sends them.
type NamedFiles = Vec<(&'static str, Vec<u8>)>;

fn six_files() -> NamedFiles {
    vec![
        ("notes.txt", b"First paragraph\nstill first.\n\nSecond paragraph.\n".to_vec()),
        ("readme.md", b"# Title\n\nBody text.".to_vec()),
        ("people.csv", b"name,city\nAda,London\nGrace,\"New York, NY\"\n".to_vec()),
        (
            "page.html",
            b"<html><head><title>Doc</title><script>alert('x')</script></head><body><p>Hello <b>world</b> &amp; all</p><p>Bye</p></body></html>"
                .to_vec(),
        ),
        ("report.pdf", pdf(&["Page one text", "Page two text"])),
        ("letter.docx", docx(&["Dear reader,", "", "Kind regards."], &["cell A", "cell B"])),
    ]
}

on_both_backends!(each_format_becomes_its_blocks_in_order, |t| {
    let base = spawn_app(&t).await;
    let token = create_token(&t.db, &TokenName::parse("uploader").unwrap(), &Grant::all()).await.unwrap();
    let files = six_files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let r = upload_api(&base, &token, &refs).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let run = r.json()["id"].as_i64().unwrap();

    let expected: Vec<(Option<i64>, Option<i64>, String)> = vec![
        (Some(0), Some(1), "First paragraph\nstill first.".into()),
        (Some(0), Some(2), "Second paragraph.".into()),
        (Some(1), Some(1), "# Title".into()),
        (Some(1), Some(2), "Body text.".into()),
        (Some(2), Some(1), "name,city\nAda,London".into()),
        (Some(2), Some(2), "name,city\nGrace,\"New York, NY\"".into()),
        (Some(3), Some(1), "Doc".into()),
        (Some(3), Some(2), "Hello world & all".into()),
        (Some(3), Some(3), "Bye".into()),
        (Some(4), Some(1), "Page one text".into()),
        (Some(4), Some(2), "Page two text".into()),
        (Some(5), Some(1), "Dear reader,".into()),
        (Some(5), Some(2), "Kind regards.".into()),
        (Some(5), Some(3), "cell A".into()),
        (Some(5), Some(4), "cell B".into()),
    ];
    assert_eq!(run_blocks(&t, run).await, expected);
    assert_eq!(r.json()["block_count"], json!(expected.len()));

    let files_rows: Vec<(String, String, i64, i64)> = sqlx::query(
        "SELECT file_name, extension, size_bytes, block_count FROM run_files WHERE run_id = $1 ORDER BY file_index",
    )
    .bind(run)
    .fetch_all(&t.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get("file_name").unwrap(),
            r.try_get("extension").unwrap(),
            r.try_get("size_bytes").unwrap(),
            r.try_get("block_count").unwrap(),
        )
    })
    .collect();
    let names: Vec<&str> = files_rows.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["notes.txt", "readme.md", "people.csv", "page.html", "report.pdf", "letter.docx"]);
    assert_eq!(files_rows.iter().map(|f| f.3).collect::<Vec<_>>(), [2, 2, 2, 3, 2, 4]);
    assert_eq!(files_rows[4].2, files[4].1.len() as i64);

    // The same files always give the same blocks.
    let again = upload_api(&base, &token, &refs).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(run_blocks(&t, again.json()["id"].as_i64().unwrap()).await, expected);
    t.finish().await;
});

on_both_backends!(the_upload_keys_refuse_an_upload_and_nothing_is_written, |t| {
    let base = spawn_app(&t).await;
    let token = create_token(&t.db, &TokenName::parse("uploader").unwrap(), &Grant::all()).await.unwrap();
    let s = store(&t);
    let txt: &[u8] = b"some text";

    s.update(&admin(), "upload.max_files_per_batch", &json!(2), 0, Some("tighter")).await.unwrap();
    let before = stored(&t).await;
    let r = upload_api(&base, &token, &[("a.txt", txt), ("b.txt", txt), ("c.txt", txt)]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"], json!("upload.max_files_per_batch is 2 (source=admin); 3 files were sent"));
    assert_eq!(r.json()["field"], json!("files"));
    assert_eq!(stored(&t).await, before, "a refused upload wrote something");

    // Two files are admitted; the run's snapshot records the limit that admitted them.
    let first = upload_api(&base, &token, &[("a.txt", txt), ("b.txt", txt)]).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first_run = first.json()["id"].as_i64().unwrap();

    let r = upload_api(&base, &token, &[("a.exe", txt)]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["error"],
        json!(
            "upload.allowed_extensions is [\"pdf\",\"docx\",\"txt\",\"md\",\"html\",\"csv\"] (source=default); \
             \"a.exe\" has extension \"exe\""
        )
    );
    s.update(&admin(), "upload.allowed_extensions", &json!(["txt"]), 0, Some("text only")).await.unwrap();
    let before = stored(&t).await;
    let r = upload_api(&base, &token, &[("a.txt", txt), ("b.md", txt)]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["error"],
        json!("upload.allowed_extensions is [\"txt\"] (source=admin); \"b.md\" has extension \"md\"")
    );
    assert_eq!(stored(&t).await, before, "a refused upload wrote something");

    // A superuser raises the limit: the same upload is admitted, for new runs only.
    s.update(&admin(), "upload.max_files_per_batch", &json!(3), 1, Some("more")).await.unwrap();
    let r = upload_api(&base, &token, &[("a.txt", txt), ("b.txt", txt), ("c.txt", txt)]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let later = runtime_policy::runs::server::snapshot(&t.db, r.json()["id"].as_i64().unwrap()).await.unwrap();
    assert_eq!(later.snapshot.get("upload.max_files_per_batch").unwrap().value, json!(3));
    let earlier = runtime_policy::runs::server::snapshot(&t.db, first_run).await.unwrap();
    assert_eq!(earlier.snapshot.get("upload.max_files_per_batch").unwrap().value, json!(2));
    assert_eq!(
        earlier.snapshot.get("upload.allowed_extensions").unwrap().value,
        json!(["pdf", "docx", "txt", "md", "html", "csv"])
    );
    t.finish().await;
});

on_both_backends!(content_that_is_not_its_extension_is_refused_by_name, |t| {
    let base = spawn_app(&t).await;
    let token = create_token(&t.db, &TokenName::parse("uploader").unwrap(), &Grant::all()).await.unwrap();
    let before = stored(&t).await;
    let cases: Vec<(NamedFiles, &str)> = vec![
        (
            vec![("ok.txt", b"fine".to_vec()), ("fake.pdf", b"just some text".to_vec())],
            "files: \"fake.pdf\" is not a PDF",
        ),
        (vec![("fake.docx", b"plain words".to_vec())], "files: \"fake.docx\" is not a DOCX document"),
        (vec![("blank.txt", b"\n \n".to_vec())], "files: \"blank.txt\" yields no text"),
        (vec![("image.pdf", pdf(&[""]))], "files: \"image.pdf\" yields no text"),
        (vec![("binary.csv", vec![0xff, 0x00, 0x12])], "files: \"binary.csv\" is not UTF-8 text"),
    ];
    for (files, message) in cases {
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let r = upload_api(&base, &token, &refs).await;
        assert_eq!(r.status, 422, "{message}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.starts_with(message), "{error}");
    }
    // A file over the limit per file is refused while it is read.
    let big = vec![b'a'; runtime_policy::runs::upload::MAX_FILE_BYTES + 1];
    let r = upload_api(&base, &token, &[("big.txt", &big)]).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("\"big.txt\""), "{}", r.body);
    // No file at all, and a body that is not multipart.
    let r = upload_api(&base, &token, &[]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["field"], json!("files"));
    assert_eq!(stored(&t).await, before);
    t.finish().await;
});

/// Signs in through the sign-in form and returns the session cookie.
async fn sign_in(base: &str, email: &str, password: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let body = format!("email={}&password={}", paths::encode_query(email), paths::encode_query(password));
    let res = client
        .post(format!("{base}/api/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", base)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "sign-in: {}", res.status());
    let cookie = res.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().unwrap();
        (!v.contains("Max-Age=0")).then(|| v.split(';').next().unwrap().to_string())
    });
    cookie.expect("a session cookie")
}

/// Sends an upload whose declared length is over the limit and returns the head of the answer.
/// The plain form's answer comes after its whole body (the server reads and drops it, so that a
/// browser still sending sees the answer); the script's comes at once, so only the head is sent.
async fn declared_too_large(base: &str, cookie: &str, accept: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let declared = runtime_policy::runs::upload::MAX_UPLOAD_BYTES + (2 << 20);
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {addr}\r\ncookie: {cookie}\r\norigin: {base}\r\naccept: {accept}\r\n\
         content-type: multipart/form-data; boundary=x\r\ncontent-length: {declared}\r\n\r\n--x\r\n",
        paths::RUNS_UPLOAD
    );
    s.write_all(head.as_bytes()).await.unwrap();
    if accept != "application/json" {
        let chunk = vec![b'a'; 1 << 20];
        let mut left = declared - "--x\r\n".len();
        while left > 0 {
            let n = left.min(chunk.len());
            s.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            other => panic!("no answer to an oversized upload: {other:?}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A page's HTML as the holder of `cookie` gets it.
async fn page_text(base: &str, path: &str, cookie: &str) -> String {
    let res = reqwest::Client::new().get(format!("{base}{path}")).header("cookie", cookie).send().await.unwrap();
    res.text().await.unwrap()
}

on_both_backends!(the_page_form_uploads_with_and_without_javascript, |t| {
    let base = spawn_app(&t).await;
    for (email, role) in [("member@example.com", Role::Member), ("other@example.com", Role::Member)] {
        let state = t.state().await;
        let hash = state.auth.hasher.hash(NewPassword::parse("member password 1").unwrap()).await.unwrap();
        create_user(&t.db, &Email::parse(email).unwrap(), role, &hash).await.unwrap();
    }
    let cookie = sign_in(&base, "member@example.com", "member password 1").await;
    let url = format!("{base}{}", paths::RUNS_UPLOAD);
    let files: Vec<(&str, &[u8])> =
        vec![("one.txt", b"alpha\n\nbeta"), ("two.md", b"gamma"), ("three.csv", b"h\nx\ny")];
    let (ct, body) = multipart(&files);

    // Without JavaScript: the browser is sent to the new run.
    let r = post(&url, &[("cookie", &cookie), ("origin", &base)], &ct, body.clone()).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.location.unwrap();
    assert!(location.starts_with("/app/runs/"), "{location}");
    let html = page_text(&base, &location, &cookie).await;
    for name in ["one.txt", "two.md", "three.csv"] {
        assert!(html.contains(name), "the run page lacks {name}");
    }
    assert!(html.contains("data-testid=\"run-file-blocks-0\">2<"), "one.txt has 2 blocks");
    assert!(html.contains("data-testid=\"run-file-blocks-2\">2<"), "three.csv has 2 blocks");
    assert!(html.contains("gamma"));

    // The page's script asks for JSON.
    let r =
        post(&url, &[("cookie", &cookie), ("origin", &base), ("accept", "application/json")], &ct, body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();

    // A refusal goes back to the list with the error, which the page shows.
    let (ct_bad, bad) = multipart(&[("x.exe", b"nope")]);
    let r = post(&url, &[("cookie", &cookie), ("origin", &base)], &ct_bad, bad.clone()).await;
    assert_eq!(r.status, 303);
    let location = r.location.unwrap();
    assert!(location.starts_with("/app/runs?upload_error="), "{location}");
    let html = page_text(&base, &location, &cookie).await;
    assert!(html.contains("upload.allowed_extensions is"), "the list page does not show the refusal");
    let r = post(&url, &[("cookie", &cookie), ("origin", &base), ("accept", "application/json")], &ct_bad, bad).await;
    assert_eq!(r.status, 422);

    // A body declared over the upload's limit is refused before it is read: the plain form is
    // sent back to the list with the reason, the script gets JSON.
    for (accept, status) in [("text/html", 303), ("application/json", 413)] {
        let head = declared_too_large(&base, &cookie, accept).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        if status == 303 {
            let location = head
                .lines()
                .find_map(|l| l.split_once(": ").filter(|(name, _)| name.eq_ignore_ascii_case("location")))
                .map(|(_, value)| value)
                .unwrap_or_else(|| panic!("no location: {head}"))
                .to_string();
            assert!(location.starts_with("/app/runs?upload_error="), "{location}");
            let html = page_text(&base, &location, &cookie).await;
            assert!(html.contains("the upload is over 50 MiB; at most 50 MiB in all and 10 MiB per file"), "{html}");
        }
    }

    // Another member does not see the run; nobody signed in is sent to sign in; another site's
    // form is refused.
    let other = sign_in(&base, "other@example.com", "member password 1").await;
    assert!(!page_text(&base, &paths::run_href(id), &other).await.contains("one.txt"));
    let before = stored(&t).await;
    let r = post(&url, &[("origin", &base)], &ct, body.clone()).await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some(paths::login_href(paths::RUNS).as_str())));
    let r = post(&url, &[("cookie", &cookie), ("origin", "https://evil.example")], &ct, body).await;
    assert_eq!(r.status, 403);
    assert_eq!(stored(&t).await, before);
    t.finish().await;
});

#[test]
fn the_cli_creates_a_run_from_files_under_the_upload_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.csv");
    let bad = dir.path().join("c.exe");
    std::fs::write(&a, "one\n\ntwo").unwrap();
    std::fs::write(&b, "h\n1\n2\n3").unwrap();
    std::fs::write(&bad, "x").unwrap();
    let run = |args: &[&std::path::Path]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runtime-policy"));
        cmd.env("DATABASE_URL", &url).args(["run", "create"]);
        for p in args {
            cmd.arg("--file").arg(p);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[&a, &b]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("created run 1 with 5 blocks"), "{out}");
    let (code, _, err) = run(&[&a, &bad]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("upload.allowed_extensions is") && err.contains("\"c.exe\" has extension \"exe\""), "{err}");
    let (code, _, err) = run(&[&dir.path().join("missing.txt")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--file: cannot read"), "{err}");
}

/// A PDF whose one page's content stream inflates to `size` bytes of spaces.
fn pdf_bomb(size: usize) -> Vec<u8> {
    use lopdf::{dictionary, Document, Object, Stream};
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..size >> 20 {
        z.write_all(&chunk).unwrap();
    }
    let packed = z.finish().unwrap();
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content_id = doc.add_object(Stream::new(dictionary! { "Filter" => "FlateDecode" }, packed));
    let page_id = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_extraction_matches_and_contains_a_decompression_bomb() {
    use runtime_policy::runs::upload::{extract_all, extract_isolated, Isolation, UploadedFile};
    let isolation =
        Isolation { exe: env!("CARGO_BIN_EXE_runtime-policy").into(), memory_bytes: 256 << 20, seconds: 30 };
    let files: Vec<UploadedFile> =
        six_files().into_iter().map(|(name, bytes)| UploadedFile { name: name.into(), bytes }).collect();
    assert_eq!(extract_isolated(&isolation, &files).await.unwrap(), extract_all(&files).unwrap());

    // A refusal in the child comes back as it is.
    let fake = vec![UploadedFile { name: "fake.pdf".into(), bytes: b"text".to_vec() }];
    let e = extract_isolated(&isolation, &fake).await.unwrap_err();
    assert_eq!((e.status_code(), e.field_name()), (422, Some("files")));
    assert!(e.to_string().starts_with("files: \"fake.pdf\" is not a PDF"), "{e}");

    // A PDF under the size limit that inflates to 1 GiB stops at the memory limit, named; the caller goes on.
    let bomb = pdf_bomb(1 << 30);
    assert!(bomb.len() < runtime_policy::runs::upload::MAX_FILE_BYTES, "{} bytes", bomb.len());
    let files = vec![
        UploadedFile { name: "fine.txt".into(), bytes: b"fine".to_vec() },
        UploadedFile { name: "bomb.pdf".into(), bytes: bomb },
    ];
    let e = extract_isolated(&isolation, &files).await.unwrap_err();
    assert_eq!(e.status_code(), 422);
    let message = e.to_string();
    assert!(message.starts_with("files: \"bomb.pdf\": the documents could not be read within the limits"), "{message}");
    assert!(message.contains("256 MiB"), "{message}");
}
