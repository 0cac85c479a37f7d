//! `deepinsight serve` over real TCP: KServe v2 and /predict answer what the library computes
//! for the same samples, bad requests get a 4xx JSON error naming the field, the batcher forms
//! batches and refuses when full, metrics and the OpenAPI document describe it all, and SIGTERM
//! drains the queue and exits 0.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deepinsight::run::RunDir;
use deepinsight::serve::{BatchConfig, ModelSpec, ServeConfig, Server};
use ndarray::Array2;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The small cohort's run folder, trained once for every test of this file.
fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        common::write_small_cohort(&dir);
        // Absolute input paths: the optimisation job reads the validation samples again from
        // the server's working folder.
        let mut pipeline = common::small_pipeline("");
        for file in ["a.csv", "b.csv", "labels.csv"] {
            let path = format!("\"{}\"", dir.join(file).display());
            pipeline = pipeline.replace(&format!("\"{file}\""), &path);
        }
        std::fs::write(dir.join("p.toml"), pipeline).unwrap();
        let out = common::deepinsight(&dir, &["run", "p.toml"]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        dir.join("models/small")
    })
}

/// Raw values of sample `i` of the small cohort, by modality and feature name.
fn raw_sample(i: usize) -> Value {
    let read = |file: &str| -> Value {
        let text = std::fs::read_to_string(model_dir().join("../..").join(file)).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.nth(i).unwrap().split(',').collect();
        let map: serde_json::Map<String, Value> = header[1..]
            .iter()
            .zip(&row[1..])
            .map(|(h, v)| (h.to_string(), json!(v.parse::<f64>().unwrap())))
            .collect();
        Value::Object(map)
    };
    json!({"id": format!("S{i}"), "values": {"a": read("a.csv"), "b": read("b.csv")}})
}

/// What the library computes for the same raw samples: rendered images and probabilities.
fn expected(samples: &[Value]) -> (Vec<f32>, Vec<Vec<f32>>) {
    let run_dir = RunDir::open(model_dir()).unwrap();
    let space = &run_dir.manifest.feature_space;
    let blocks: Vec<Array2<f32>> = space
        .modalities
        .iter()
        .map(|m| {
            Array2::from_shape_fn((samples.len(), m.features.len()), |(i, j)| {
                samples[i]["values"][&m.name][&m.features[j]]
                    .as_f64()
                    .unwrap() as f32
            })
        })
        .collect();
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    let values = space.transform_selected(&views).unwrap();
    let images = run_dir.render(values.view()).unwrap();
    let probabilities = run_dir.predict(&images, 32);
    (images, probabilities)
}

fn config(batching: BatchConfig) -> ServeConfig {
    ServeConfig {
        addr: "127.0.0.1:0".into(),
        max_body_bytes: 1024 * 1024,
        batching,
        models: vec![ModelSpec {
            name: Some("small".into()),
            dir: model_dir().to_path_buf(),
            batching: None,
            backend: None,
        }],
        backend: Default::default(),
        connections: Default::default(),
    }
}

struct Answer {
    status: u16,
    headers: String,
    body: Value,
    text: String,
}

/// One HTTP/1.1 request on a fresh connection.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str, body: &[u8]) -> Answer {
    let (status, headers, raw) = call_raw(addr, method, path, body, "").await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// One HTTP/1.1 request with `extra` header lines ("Name: value\r\n" each); the answer's
/// status, lower-cased headers and body bytes.
async fn call_raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    extra: &str,
) -> (u16, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer 413 before reading all of a large body.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let headers = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = headers[9..12].parse().unwrap();
    (status, headers, raw[end + 4..].to_vec())
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &Value) -> Answer {
    call(addr, "POST", path, body.to_string().as_bytes()).await
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    call(addr, "GET", path, b"").await
}

/// A v2 request with the binary data extension: the JSON `header`, then `values` as
/// little-endian bytes; with the header line that says where the JSON ends.
fn binary_body(header: &Value, values: &[f32]) -> (Vec<u8>, String) {
    let mut body = header.to_string().into_bytes();
    let length = format!("Inference-Header-Content-Length: {}\r\n", body.len());
    values.iter().for_each(|v| body.extend(v.to_le_bytes()));
    (body, length)
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_match_the_library_over_every_route() {
    let server = Server::start(config(BatchConfig::default())).await.unwrap();
    let addr = server.addr;
    let samples: Vec<Value> = (0..3).map(raw_sample).collect();
    let (images, probabilities) = expected(&samples);
    let classes = ["case", "control"];

    // Raw omics by feature name.
    let a = post(addr, "/predict", &json!({"samples": samples})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    for (i, p) in a.body["predictions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p["id"], format!("S{i}"));
        let got: Vec<f32> = classes
            .iter()
            .map(|c| p["probabilities"][c].as_f64().unwrap() as f32)
            .collect();
        assert!(
            close(&got, &probabilities[i]),
            "{got:?} vs {:?}",
            probabilities[i]
        );
        let best = if got[0] > got[1] { "case" } else { "control" };
        assert_eq!(p["label"], best);
        assert_eq!(p["imputed"], 0);
    }

    // Raw omics as arrays in the model's feature order (GET .../features gives it).
    let f = get(addr, "/v2/models/small/features").await;
    assert_eq!(f.status, 200);
    let ordered: Vec<Value> = samples
        .iter()
        .map(|s| {
            let values: serde_json::Map<String, Value> = f.body["modalities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let name = m["name"].as_str().unwrap();
                    let row: Vec<Value> = m["features"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|feat| s["values"][name][feat.as_str().unwrap()].clone())
                        .collect();
                    (name.to_string(), Value::Array(row))
                })
                .collect();
            json!({"values": values})
        })
        .collect();
    let b = post(
        addr,
        "/predict",
        &json!({"model": "small", "samples": ordered}),
    )
    .await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(
        b.body["predictions"][2]["probabilities"],
        a.body["predictions"][2]["probabilities"]
    );

    // Names written with JSON escapes ("\u0061" is "a") name the same features: they are
    // the ones the server cannot borrow from the body's text.
    let text = serde_json::to_string(&json!({"samples": samples})).unwrap();
    let escaped = text.replace("\"a", "\"\\u0061");
    assert_ne!(escaped, text);
    let e = call(addr, "POST", "/predict", escaped.as_bytes()).await;
    assert_eq!(e.status, 200, "{}", e.text);
    assert_eq!(e.body["predictions"], a.body["predictions"]);

    // A body too large to parse on the async runtime's thread (over 256 KiB) is parsed on a
    // blocking thread, with the same answers.
    let many: Vec<Value> = (0..2400).map(|i| samples[i % 3].clone()).collect();
    let big = serde_json::to_vec(&json!({"samples": many})).unwrap();
    assert!(big.len() > 256 * 1024, "{} bytes", big.len());
    let g = call(addr, "POST", "/predict", &big).await;
    assert_eq!(g.status, 200, "{}", g.text);
    let got = g.body["predictions"].as_array().unwrap();
    assert_eq!(got.len(), 2400);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p, &a.body["predictions"][i % 3], "sample {i}");
    }

    // KServe v2 on the images the library rendered.
    let meta = get(addr, "/v2/models/small").await;
    let shape: Vec<i64> = meta.body["inputs"][0]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect();
    assert_eq!(shape[0], -1);
    assert_eq!(meta.body["platform"], "burn-flex");
    assert_eq!(meta.body["outputs"][0]["shape"], json!([-1, 2]));
    let c = post(
        addr,
        "/v2/models/small/infer",
        &json!({"id": "r1", "inputs": [{"name": "input", "datatype": "FP32",
            "shape": [3, shape[1], shape[2], shape[3]], "data": images}]}),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["id"], "r1");
    assert_eq!(c.body["outputs"][0]["shape"], json!([3, 2]));
    assert!(close(
        &floats(&c.body["outputs"][0]["data"]),
        &probabilities.concat()
    ));
    assert_eq!(
        c.body["outputs"][1]["data"][0],
        a.body["predictions"][0]["label"]
    );

    // The same images as raw bytes (the binary data extension), the probabilities asked for
    // as bytes too and the labels as JSON.
    let header = json!({"inputs": [{"name": "input", "datatype": "FP32",
            "shape": [3, shape[1], shape[2], shape[3]],
            "parameters": {"binary_data_size": images.len() * 4}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}},
            {"name": "label"}]});
    let (body, length) = binary_body(&header, &images);
    let (status, headers, answer) =
        call_raw(addr, "POST", "/v2/models/small/infer", &body, &length).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let json_length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("inference-header-content-length: "))
        .expect("the answer's JSON length")
        .parse()
        .unwrap();
    let (json_part, bytes) = answer.split_at(json_length);
    let head: Value = serde_json::from_slice(json_part).unwrap();
    assert_eq!(
        head["outputs"][0]["parameters"]["binary_data_size"],
        3 * 2 * 4
    );
    assert!(head["outputs"][0].get("data").is_none(), "{head}");
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert!(close(&got, &probabilities.concat()), "{got:?}");
    assert_eq!(head["outputs"][1]["data"], c.body["outputs"][1]["data"]);
    // A header length past the body: 400 naming the header.
    let past = format!("Inference-Header-Content-Length: {}\r\n", body.len() + 1);
    let (status, _, answer) = call_raw(addr, "POST", "/v2/models/small/infer", &body, &past).await;
    let error: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["field"], "Inference-Header-Content-Length");

    // Raw omics on v2: the `omics` input, rows of every modality's features in the order of
    // GET .../features, as JSON numbers and as bytes: /predict's answers.
    let rows: Vec<f32> = ordered
        .iter()
        .flat_map(|sample| {
            f.body["modalities"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|m| floats(&sample["values"][m["name"].as_str().unwrap()]))
                .collect::<Vec<_>>()
        })
        .collect();
    let width = rows.len() / 3;
    assert_eq!(meta.body["inputs"][1]["name"], "omics");
    assert_eq!(meta.body["inputs"][1]["shape"], json!([-1, width]));
    let o = post(
        addr,
        "/v2/models/small/infer",
        &json!({"inputs": [{"name": "omics", "datatype": "FP32", "shape": [3, width],
            "data": rows}]}),
    )
    .await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert!(close(
        &floats(&o.body["outputs"][0]["data"]),
        &probabilities.concat()
    ));
    // The second sample's first value missing: refused, naming its index and feature, unless
    // allow_missing; then imputed as /predict imputes it.
    let mut gappy = rows.clone();
    gappy[width] = f32::NAN;
    let omics_bytes = |allow_missing: bool| {
        let header = json!({"inputs": [{"name": "omics", "datatype": "FP32",
            "shape": [3, width], "parameters": {"binary_data_size": gappy.len() * 4}}],
            "parameters": {"allow_missing": allow_missing}});
        binary_body(&header, &gappy)
    };
    let (body, length) = omics_bytes(false);
    let (status, _, answer) =
        call_raw(addr, "POST", "/v2/models/small/infer", &body, &length).await;
    let error: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["field"], format!("inputs[0].data[{width}]"));
    let first = format!(
        "{}.{}",
        f.body["modalities"][0]["name"].as_str().unwrap(),
        f.body["modalities"][0]["features"][0].as_str().unwrap()
    );
    assert!(error["error"].as_str().unwrap().contains(&first), "{error}");
    let (body, length) = omics_bytes(true);
    let (status, _, answer) =
        call_raw(addr, "POST", "/v2/models/small/infer", &body, &length).await;
    let imputed: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 200, "{imputed}");
    let mut missing = ordered[1].clone();
    missing["values"][f.body["modalities"][0]["name"].as_str().unwrap()][0] = Value::Null;
    let reference = post(
        addr,
        "/predict",
        &json!({"samples": [missing], "allow_missing": true}),
    )
    .await;
    assert_eq!(reference.status, 200, "{}", reference.text);
    let expected: Vec<f32> = classes
        .iter()
        .map(|c| {
            reference.body["predictions"][0]["probabilities"][c]
                .as_f64()
                .unwrap() as f32
        })
        .collect();
    let got = floats(&imputed["outputs"][0]["data"]);
    assert!(close(&got[2..4], &expected), "{got:?} vs {expected:?}");

    // The optimisation API's batch-predict, through the batcher and around it.
    for batching in [true, false] {
        let d = post(
            addr,
            "/optimization/batch-predict",
            &json!({"model_name": "small", "data": samples, "enable_batching": batching}),
        )
        .await;
        assert_eq!(d.status, 200, "{}", d.text);
        assert_eq!(d.body["batched"], batching);
        assert_eq!(d.body["predictions"], a.body["predictions"]);
    }

    // Missing values are refused unless asked to impute them.
    let mut partial = samples[0].clone();
    partial["values"]["a"]["a0"] = Value::Null;
    let e = post(addr, "/predict", &json!({"samples": [partial]})).await;
    assert_eq!(e.status, 422);
    assert_eq!(e.body["field"], "samples[0].values.a.a0");
    let ok = post(
        addr,
        "/predict",
        &json!({"samples": [partial], "allow_missing": true}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let kept_a0 = f.body["modalities"][0]["features"]
        .as_array()
        .unwrap()
        .contains(&json!("a0"));
    assert_eq!(ok.body["predictions"][0]["imputed"], u32::from(kept_a0));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_error_naming_the_field() {
    let server = Server::start(config(BatchConfig::default())).await.unwrap();
    let addr = server.addr;
    let sample = raw_sample(0);
    let mut short = sample.clone();
    short["values"]["b"] = json!([1.0, 2.0]);
    let mut unknown = sample.clone();
    unknown["values"]["a"]["nope"] = json!(1.0);
    let mut infinite = sample.clone();
    infinite["values"]["b"]["b1"] = json!(1e300);
    let mut modality = sample.clone();
    modality["values"]["c"] = json!({"x": 1.0});
    // (what, route, body, status, field named)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("wrong feature count", "/predict", json!({"samples": [short]}).to_string().into(), 422, Some("samples[0].values.b")),
        ("unknown feature", "/predict", json!({"samples": [unknown]}).to_string().into(), 422, Some("samples[0].values.a.nope")),
        ("infinite value", "/predict", json!({"samples": [infinite]}).to_string().into(), 422, Some("samples[0].values.b.b1")),
        ("unknown modality", "/predict", json!({"samples": [modality]}).to_string().into(), 422, Some("samples[0].values.c")),
        ("no samples", "/predict", json!({"samples": []}).to_string().into(), 422, Some("samples")),
        ("NaN literal", "/predict", br#"{"samples": [{"values": {"a": {"a0": NaN}}}]}"#.to_vec(), 400, None),
        ("empty body", "/predict", Vec::new(), 400, None),
        ("malformed JSON", "/predict", b"{\"samples\": [".to_vec(), 400, None),
        ("unknown key", "/predict", br#"{"samples": [], "sample": 1}"#.to_vec(), 422, None),
        ("body over the limit", "/predict", vec![b' '; 1200 * 1024], 413, None),
        ("unknown model", "/v2/models/other/infer", br#"{"inputs": []}"#.to_vec(), 404, Some("model_name")),
        ("model name leaving the folder", "/v2/models/..%2F..%2Fetc/infer", br#"{"inputs": []}"#.to_vec(), 400, Some("model_name")),
        ("wrong tensor shape", "/v2/models/small/infer",
            br#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 2, 2], "data": [1, 2, 3, 4]}]}"#.to_vec(), 422, Some("inputs[0].shape")),
        ("wrong datatype", "/v2/models/small/infer",
            br#"{"inputs": [{"name": "input", "datatype": "INT8", "shape": [1], "data": [1]}]}"#.to_vec(), 422, Some("inputs[0].datatype")),
        ("unknown output", "/v2/models/small/infer",
            br#"{"inputs": [], "outputs": [{"name": "logits"}]}"#.to_vec(), 422, Some("outputs[0].name")),
        ("bad priority", "/predict", json!({"samples": [sample], "priority": 9}).to_string().into(), 422, Some("priority")),
        ("unknown batch-predict model", "/optimization/batch-predict",
            json!({"model_name": "../x", "data": [sample]}).to_string().into(), 400, Some("model_name")),
    ];
    for (what, path, body, status, field) in cases {
        let a = call(addr, "POST", path, &body).await;
        assert_eq!(a.status, status, "{what}: {}", a.text);
        assert!(
            a.body["error"].is_string(),
            "{what}: not a JSON error: {}",
            a.text
        );
        if let Some(field) = field {
            assert_eq!(a.body["field"], field, "{what}: {}", a.text);
        }
    }
    let a = get(addr, "/no/such/route").await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let a = get(addr, "/predict").await;
    assert_eq!(a.status, 405);
    assert!(a.body["error"].is_string());
    // A deadline already past: 504, never computed.
    let a = post(
        addr,
        "/predict",
        &json!({"samples": [sample], "timeout_ms": 0}),
    )
    .await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (504, Some("deadline_exceeded"))
    );
    // Nothing else was affected.
    let a = post(addr, "/predict", &json!({"samples": [sample]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(get(addr, "/v2/health/ready").await.status, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_a_batch_and_metrics_show_it() {
    let batching = BatchConfig {
        max_batch_size: 8,
        max_queue_delay_ms: 2_000,
        ..BatchConfig::default()
    };
    let server = Server::start(config(batching)).await.unwrap();
    let addr = server.addr;
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(async move {
                post(addr, "/predict", &json!({"samples": [raw_sample(i)]})).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    // The eighth request filled the batch: nobody waited for the 2 s delay.
    assert!(start.elapsed() < Duration::from_millis(1_500));
    let metrics = get(addr, "/metrics").await.text;
    assert!(
        metrics.contains(r#"deepinsight_batch_size_count{model="small"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"deepinsight_batch_size_sum{model="small"} 8.0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"deepinsight_http_requests_total{route="/predict",code="200"} 8"#),
        "{metrics}"
    );
    let status = get(addr, "/optimization/status").await.body;
    let model = &status["models"][0];
    assert_eq!(model["name"], "small");
    assert_eq!(model["formats"]["burn"], true);
    assert_eq!(model["batching"]["max_batch_size"], 8);
    assert_eq!(model["live"]["requests"], 8);
    assert_eq!(model["live"]["mean_batch_size"], 8.0);
    let openapi = get(addr, "/openapi.json").await.body;
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/predict",
        "/optimization/status",
        "/optimization/batch-predict",
        "/optimization/optimize-model",
        "/optimization/jobs/{id}",
        "/metrics",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    assert!(openapi["components"]["schemas"]["PredictRequest"].is_object());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let batching = BatchConfig {
        max_batch_size: 64,
        max_queue_delay_ms: 0,
        queue_capacity: 64,
        ..BatchConfig::default()
    };
    let server = Server::start(config(batching)).await.unwrap();
    let addr = server.addr;
    let samples: Vec<Value> = (0..64).map(|i| raw_sample(i % 24)).collect();
    let body = json!({"samples": samples});
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move { post(addr, "/predict", &body).await })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        let a = t.await.unwrap();
        if a.status == 503 {
            assert!(a.headers.contains("retry-after: 1"), "{}", a.headers);
            assert_eq!(a.body["code"], "queue_full");
        }
        codes.push(a.status);
    }
    assert!(codes.iter().all(|&c| c == 200 || c == 503), "{codes:?}");
    assert!(
        codes.contains(&503),
        "24 requests of 64 samples never filled a 64-sample queue"
    );
    assert!(codes.contains(&200));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_model_runs_the_export_as_a_job_with_a_history() {
    let server = Server::start(config(BatchConfig::default())).await.unwrap();
    let addr = server.addr;
    let bad = post(
        addr,
        "/optimization/optimize-model",
        &json!({"model_name": "small", "target_platforms": ["batch", "gpu"]}),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["field"], "target_platforms[1]");
    let bad = post(
        addr,
        "/optimization/optimize-model",
        &json!({"model_name": "small", "target_platforms": ["batch"], "optimization_level": 7}),
    )
    .await;
    assert_eq!(bad.body["field"], "optimization_level");

    let a = post(
        addr,
        "/optimization/optimize-model",
        &json!({"model_name": "small", "target_platforms": ["batch"], "min_agreement": 0.5}),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    assert!(matches!(
        a.body["status"].as_str(),
        Some("queued" | "running")
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = get(addr, &format!("/optimization/jobs/{id}")).await.body;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job did not end: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    let format = &job["report"]["formats"][0];
    assert_eq!(format["format"], "burn-int8");
    assert!(format["agreement"].as_f64().unwrap() >= 0.5);
    assert!(job["seconds"].as_f64().unwrap() > 0.0);
    let status = get(addr, "/optimization/status").await.body;
    assert_eq!(status["models"][0]["formats"]["burn-int8"], true);
    assert_eq!(status["optimizations"][0]["id"], id.as_str());
    assert_eq!(get(addr, "/optimization/jobs/opt-99").await.status, 404);
    server.shutdown().await.unwrap();
}

/// The address a `deepinsight serve` child prints first, and the rest of its output lines.
fn listening_on(
    child: &mut std::process::Child,
) -> (
    std::net::SocketAddr,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .parse()
        .unwrap();
    (addr, lines)
}

#[test]
fn sigterm_drains_the_queue_and_exits_0() {
    let dir = model_dir();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_deepinsight"))
        .args(["serve", "--addr", "127.0.0.1:0", "--max-batch-size", "64"])
        .args(["--max-queue-delay-ms", "20000"])
        .arg(format!("--model=small={}", dir.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, mut lines) = listening_on(&mut child);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let start = Instant::now();
    let waiting: Vec<_> = (0..3)
        .map(|i| {
            runtime.spawn(async move {
                post(addr, "/predict", &json!({"samples": [raw_sample(i)]})).await
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for t in waiting {
        let a = runtime.block_on(t).unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // Answered on shutdown, not after the 20 s batching delay.
    assert!(start.elapsed() < Duration::from_secs(15));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.next().unwrap().unwrap(), "stopped");
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_features_of_one_sample_as_the_library_maps_them() {
    use deepinsight::explain::cam::{self, CamOptions, Method};
    let server = Server::start(config(BatchConfig::default())).await.unwrap();
    let addr = server.addr;
    let sample = raw_sample(3);
    let (images, probabilities) = expected(std::slice::from_ref(&sample));
    let run_dir = RunDir::open(model_dir()).unwrap();
    let shape = run_dir.image_shape();
    for (method, name) in [(Method::Saliency, "saliency"), (Method::Gradcam, "gradcam")] {
        let a = post(
            addr,
            "/explain",
            &json!({"sample": sample, "method": name, "stage": 1, "target": "case", "include_map": true}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["id"], "S3");
        assert_eq!(a.body["target"], "case");
        let p = floats(&json!([
            a.body["probabilities"]["case"],
            a.body["probabilities"]["control"]
        ]));
        assert!(
            close(&p, &probabilities[0]),
            "{p:?} vs {:?}",
            probabilities[0]
        );
        // The map and the scores are the library's for the same image and class.
        let options = CamOptions {
            method,
            stage: 1,
            batch_size: 1,
        };
        let maps = cam::maps(
            &run_dir.model,
            &images,
            shape,
            &[Some(0)],
            &options,
            &run_dir.device,
        )
        .unwrap();
        assert!(
            close(&floats(&a.body["map"]), &maps.values),
            "{name}: map differs"
        );
        let features = a.body["features"].as_array().unwrap();
        assert_eq!(
            features.len(),
            11,
            "{name}: every feature of the small model"
        );
        let mut last = f32::INFINITY;
        for f in features {
            let channel = run_dir
                .layout
                .channels
                .iter()
                .position(|c| c.name == f["channel"])
                .unwrap();
            let (row, column) = (f["row"].as_u64().unwrap(), f["column"].as_u64().unwrap());
            let score = f["score"].as_f64().unwrap() as f32;
            assert!((score - maps.at(0, channel, row as usize, column as usize)).abs() < 1e-6);
            assert!(score <= last, "{name}: not best first");
            last = score;
        }
    }
    // Defaults: saliency for the predicted class, 20 features at most, no map.
    let a = post(addr, "/explain", &json!({"sample": sample, "top": 3})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["method"], "saliency");
    assert_eq!(a.body["features"].as_array().unwrap().len(), 3);
    assert!(a.body.get("map").is_none());

    let mut unknown = sample.clone();
    unknown["values"]["a"]["nope"] = json!(1.0);
    for (what, body, field) in [
        (
            "stage",
            json!({"sample": sample, "method": "gradcam", "stage": 9}),
            "stage",
        ),
        (
            "target",
            json!({"sample": sample, "target": "tumour"}),
            "target",
        ),
        ("top", json!({"sample": sample, "top": 0}), "top"),
        (
            "unknown feature",
            json!({"sample": unknown}),
            "sample.values.a.nope",
        ),
    ] {
        let a = post(addr, "/explain", &body).await;
        assert_eq!(
            (a.status, a.body["field"].as_str()),
            (422, Some(field)),
            "{what}: {}",
            a.text
        );
    }
    for (what, body) in [
        (
            "unknown method",
            json!({"sample": sample, "method": "lime"}),
        ),
        ("no sample", json!({"top": 3})),
    ] {
        let a = post(addr, "/explain", &body).await;
        assert!(
            (400..500).contains(&a.status) && a.body["error"].is_string(),
            "{what}: {}",
            a.text
        );
    }
    let spec = get(addr, "/openapi.json").await;
    assert!(spec.body["paths"]["/explain"]["post"].is_object());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onnx_runtime_backends_serve_the_exported_models_and_refuse_stale_ones() {
    let python = common::test_python("onnx, onnxruntime, numpy");
    assert!(
        deepinsight::onnxrt::available(),
        "ONNX Runtime not found: set DEEPINSIGHT_PYTHON (or ORT_DYLIB_PATH) as .ci/run does"
    );
    // A copy of the run without what other tests export into it.
    let copy = tempfile::tempdir().unwrap();
    let run = copy.path().join("small");
    std::fs::create_dir(&run).unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && !name.starts_with("export_report") && !name.contains("int8") {
            std::fs::copy(&path, run.join(&name)).unwrap();
        }
    }
    // Without an export, the ONNX backends say what to run.
    let mut plain = config(BatchConfig::default());
    plain.models[0].dir = run.clone();
    plain.backend = deepinsight::serve::BackendKind::Onnx;
    let err = format!("{:#}", Server::start(plain).await.err().unwrap());
    assert!(
        err.contains("needs model.onnx") && err.contains("--targets server"),
        "{err}"
    );

    let out = common::deepinsight_env(
        copy.path(),
        &[
            "export",
            "--model",
            run.to_str().unwrap(),
            "--targets",
            "server",
            "--min-agreement",
            "0",
        ],
        &[("DEEPINSIGHT_PYTHON", python.to_str())],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));

    let samples: Vec<Value> = (0..3).map(raw_sample).collect();
    let (images, probabilities) = expected(&samples);
    let run_dir = RunDir::open(model_dir()).unwrap();
    let (c, h, w) = (
        run_dir.layout.n_channels(),
        run_dir.layout.height,
        run_dir.layout.width,
    );
    let infer = json!({"inputs": [{"name": "input", "datatype": "FP32",
        "shape": [3, c, h, w], "data": images}]});
    for (kind, name) in [
        (deepinsight::serve::BackendKind::Onnx, "onnxruntime"),
        (
            deepinsight::serve::BackendKind::OnnxInt8,
            "onnxruntime-int8",
        ),
    ] {
        let mut c = config(BatchConfig::default());
        c.models[0].dir = run.clone();
        c.models[0].backend = Some(kind);
        let server = Server::start(c).await.unwrap();
        let status = get(server.addr, "/optimization/status").await;
        assert_eq!(status.body["models"][0]["backend"], name, "{}", status.text);
        assert_eq!(status.body["models"][0]["formats"]["onnx-int8"], true);
        let answer = post(server.addr, "/v2/models/small/infer", &infer).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let got = floats(&answer.body["outputs"][0]["data"]);
        if name == "onnxruntime" {
            // fp32 ONNX computes what Burn does.
            let want = probabilities.concat();
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{got:?} {want:?}");
            }
        } else {
            for p in got.chunks(2) {
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
            }
        }
        server.shutdown().await.unwrap();
    }

    // An export of another record is refused, by name of the file.
    let report_path = run.join("export_report.json");
    let mut report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    report["model_sha256"] = json!("0".repeat(64));
    std::fs::write(&report_path, serde_json::to_vec(&report).unwrap()).unwrap();
    let mut c = config(BatchConfig::default());
    c.models[0].dir = run.clone();
    c.models[0].backend = Some(deepinsight::serve::BackendKind::OnnxInt8);
    let err = format!("{:#}", Server::start(c).await.err().unwrap());
    assert!(
        err.contains("model-int8.onnx was exported from another model.bpk"),
        "{err}"
    );
}

/// Triton's own v2 client (tritonclient, Python) talks to the server: health, readiness and
/// metadata, then a tensor sent as bytes and both outputs asked for as bytes, as that client
/// does by default: the rendered images on `input`, then the raw values on `omics`. The
/// answers are the library's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triton_s_client_gets_the_library_s_answers_over_binary_data() {
    let python = common::test_python("tritonclient.http, numpy");
    let server = Server::start(config(BatchConfig::default())).await.unwrap();
    let samples: Vec<Value> = (0..3).map(raw_sample).collect();
    let (images, probabilities) = expected(&samples);
    let run_dir = RunDir::open(model_dir()).unwrap();
    let image_shape = vec![
        3,
        run_dir.layout.n_channels(),
        run_dir.layout.height,
        run_dir.layout.width,
    ];
    // Every modality's kept features, one modality after the other: the `omics` row order.
    let rows: Vec<f32> = samples
        .iter()
        .flat_map(|s| {
            run_dir
                .manifest
                .feature_space
                .modalities
                .iter()
                .flat_map(move |m| {
                    m.features
                        .iter()
                        .map(move |f| s["values"][&m.name][f].as_f64().unwrap() as f32)
                })
        })
        .collect();
    let omics_shape = vec![3, rows.len() / 3];
    let classes = run_dir.classes();
    let labels: Vec<Value> = probabilities
        .iter()
        .map(|p| json!(classes[if p[0] > p[1] { 0 } else { 1 }]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for (name, shape, data) in [("input", image_shape, images), ("omics", omics_shape, rows)] {
        let tensor = dir.path().join(format!("{name}.json"));
        let spec = json!({"name": name, "shape": shape, "data": data});
        std::fs::write(&tensor, spec.to_string()).unwrap();
        let (python, addr) = (python.clone(), server.addr.to_string());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .arg(common::root().join("tests/helpers/triton_client.py"))
                .args([addr.as_str(), "small"])
                .arg(&tensor)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{name}: {}", common::stderr(&out));
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["id"], "triton-1");
        assert_eq!(answer["binary"], json!([true, true]), "{name}: {answer}");
        let got: Vec<f32> = answer["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(floats)
            .collect();
        assert!(close(&got, &probabilities.concat()), "{name}: {got:?}");
        assert_eq!(answer["labels"], Value::Array(labels.clone()), "{name}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_dimension_past_the_limit_is_refused_however_it_is_written() {
    let server = Server::start(config(BatchConfig::default())).await.unwrap();
    let addr = server.addr;
    let [c, h, w] = RunDir::open(model_dir()).unwrap().image_shape();
    for n in [1u64 << 50, (1 << 50) + 1, 1 << 62, 4097] {
        let body = json!({"inputs": [{"name": "input", "shape": [n, c, h, w],
            "datatype": "FP32", "data": vec![0.0f32; 16]}]});
        let a = post(addr, "/v2/models/small/infer", &body).await;
        assert_eq!(a.status, 422, "{n}: {}", a.text);
        assert_eq!(a.body["field"], "inputs[0].shape", "{}", a.text);
        let header = json!({"inputs": [{"name": "input", "shape": [n, c, h, w],
            "datatype": "FP32", "parameters": {"binary_data_size": 0}}]});
        let (body, length) = binary_body(&header, &[]);
        let (status, _, raw) =
            call_raw(addr, "POST", "/v2/models/small/infer", &body, &length).await;
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(status, 422, "{n}: {text}");
        assert!(text.contains("inputs[0].shape"), "{text}");
    }
    server.shutdown().await.unwrap();
}

/// Whether the server closes `stream` within `within` (end of stream or a reset, after any
/// answer it sends).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_dropped_while_others_are_served() {
    let mut settings = config(BatchConfig::default());
    settings.connections.header_timeout_ms = 400;
    settings.connections.body_timeout_ms = 400;
    let server = Server::start(settings).await.unwrap();
    let addr = server.addr;
    let connect = || tokio::net::TcpStream::connect(addr);
    let mut slow = Vec::new();
    for _ in 0..20 {
        // Silent, half a request line, and headers with only part of the body.
        slow.push(connect().await.unwrap());
        let mut partial = connect().await.unwrap();
        partial.write_all(b"GET /v2/health/live HT").await.unwrap();
        slow.push(partial);
        let mut body = connect().await.unwrap();
        body.write_all(
            b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"samples\"",
        )
        .await
        .unwrap();
        slow.push(body);
    }
    // A keep-alive connection left idle after its answer.
    let mut idle = connect().await.unwrap();
    idle.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    slow.push(idle);

    let started = Instant::now();
    let health = get(addr, "/v2/health/live").await;
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "answered while they wait"
    );
    for (i, stream) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "connection {i} still open after the timeouts"
        );
    }
    assert_eq!(get(addr, "/v2/health/live").await.status, 200);
    server.shutdown().await.unwrap();
}

#[test]
fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    use std::io::{Read, Write};
    let dir = model_dir();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 96 && exec '{}' serve --addr 127.0.0.1:0 --header-timeout-ms 1500 \
             --model=small='{}'",
            env!("CARGO_BIN_EXE_deepinsight"),
            dir.display()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, _) = listening_on(&mut child);
    // More idle connections than the server has descriptors for.
    let idle: Vec<_> = (0..150)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A health check made meanwhile is answered once the idle ones time out.
    let started = Instant::now();
    let mut check = std::net::TcpStream::connect(addr).unwrap();
    check
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    check
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    check.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(idle);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warnings = err.matches("cannot accept connections").count();
    assert!(
        (1..=12).contains(&warnings),
        "the accept failures are logged with back-off, not every time: {warnings} lines: {err}"
    );
}

/// A copy of the small model's run folder, for tests that write into it.
fn model_copy(into: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let dir = into.join("small");
    copy(model_dir(), &dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_model_shares_identical_jobs_refuses_duplicates_and_bounds_its_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = config(BatchConfig::default());
    settings.models[0].dir = model_copy(tmp.path());
    let server = Server::start(settings).await.unwrap();
    let addr = server.addr;
    let ask = |targets: Vec<&str>, level: u8| json!({"model_name": "small", "target_platforms": targets, "optimization_level": level});
    let twice = post(
        addr,
        "/optimization/optimize-model",
        &ask(vec!["batch", "batch"], 0),
    )
    .await;
    assert_eq!(twice.status, 422, "{}", twice.text);
    assert_eq!(twice.body["field"], "target_platforms[1]");

    // Distinct jobs (level 0 only measures fp32, so they are quick) until the queue is full.
    let sets = [
        vec!["batch"],
        vec!["server"],
        vec!["mobile"],
        vec!["batch", "server"],
        vec!["batch", "mobile"],
        vec!["server", "mobile"],
        vec!["batch", "server", "mobile"],
    ];
    let mut answers = Vec::new();
    for level in [0, 1] {
        for targets in &sets {
            let a = post(
                addr,
                "/optimization/optimize-model",
                &ask(targets.clone(), level),
            )
            .await;
            let full = a.status == 429;
            answers.push(a);
            if full {
                break;
            }
        }
        if answers.last().unwrap().status == 429 {
            break;
        }
    }
    let refused = answers.last().unwrap();
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["code"], "too_many_jobs");
    assert!(
        refused.headers.contains("retry-after: 30"),
        "{}",
        refused.headers
    );
    assert!(answers[..answers.len() - 1].iter().all(|a| a.status == 202));
    let status = get(addr, "/optimization/status").await.body;
    let queued = status["optimizations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "queued")
        .count();
    assert_eq!(queued, 8, "{status}");

    // The same export as a waiting job, targets in another order: that job answers.
    let last_queued = &answers[answers.len() - 2];
    let mut targets: Vec<&str> = last_queued.body["target_platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    targets.reverse();
    let level = last_queued.body["optimization_level"].as_u64().unwrap() as u8;
    let again = post(addr, "/optimization/optimize-model", &ask(targets, level)).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.body["id"], last_queued.body["id"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_field_each_route_calls_it_and_the_document_says_so() {
    let server = Server::start(config(BatchConfig::default())).await.unwrap();
    let addr = server.addr;
    let metadata = get(addr, "/v2").await.body;
    assert_eq!(metadata["extensions"], json!(["binary_tensor_data"]));

    // batch-predict's samples are `data`; v2's priority is `parameters.priority`.
    let a = post(
        addr,
        "/optimization/batch-predict",
        &json!({"model_name": "small", "data": [{"values": {"a": {"nope": 1.0}}}]}),
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.body["field"].as_str().unwrap().starts_with("data[0]"),
        "{}",
        a.text
    );
    let a = post(
        addr,
        "/optimization/batch-predict",
        &json!({"model_name": "small", "data": []}),
    )
    .await;
    assert_eq!(a.body["field"], "data", "{}", a.text);
    let [c, h, w] = RunDir::open(model_dir()).unwrap().image_shape();
    let image = vec![0.5f32; c * h * w];
    let a = post(
        addr,
        "/v2/models/small/infer",
        &json!({"parameters": {"priority": 0}, "inputs": [{"name": "input",
            "shape": [1, c, h, w], "datatype": "FP32", "data": image}]}),
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.body["field"], "parameters.priority");

    // Malformed, empty or shapeless bodies name the body, or the missing field.
    for (body, field) in [(&b"{"[..], "body"), (b"", "body"), (b"{}", "samples")] {
        let a = call(addr, "POST", "/predict", body).await;
        assert_eq!(a.body["field"], field, "{}", a.text);
    }
    // A binary header length one byte off either way names the header.
    let header = json!({"inputs": [{"name": "input", "shape": [1, c, h, w], "datatype": "FP32",
        "parameters": {"binary_data_size": image.len() * 4}}]});
    let (body, _) = binary_body(&header, &image);
    let json_length = header.to_string().len();
    for length in [json_length - 1, json_length + 1] {
        let line = format!("Inference-Header-Content-Length: {length}\r\n");
        let (status, _, raw) = call_raw(addr, "POST", "/v2/models/small/infer", &body, &line).await;
        let answer: Value = serde_json::from_slice(&raw).unwrap();
        assert!((400..500).contains(&status), "{answer}");
        assert_eq!(
            answer["field"], "Inference-Header-Content-Length",
            "{answer}"
        );
    }

    // The document carries the limits the server enforces and the 4xx answers it gives.
    let doc = get(addr, "/openapi.json").await.body;
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    assert_eq!(
        schema("ExplainRequest")["properties"]["stage"]["minimum"],
        1
    );
    assert_eq!(
        schema("ExplainRequest")["properties"]["stage"]["maximum"],
        4
    );
    assert_eq!(
        schema("PredictRequest")["properties"]["samples"]["minItems"],
        1
    );
    assert_eq!(
        schema("InferRequest")["properties"]["inputs"]["minItems"],
        1
    );
    assert_eq!(
        schema("BatchPredictRequest")["properties"]["data"]["minItems"],
        1
    );
    assert!(schema("OptimizeRequest")["properties"]["model_name"]["pattern"].is_string());
    let priority = &schema("InferParameters")["properties"]["priority"];
    assert_eq!(priority["minimum"], 1, "{priority}");
    for (path, method) in [
        ("/predict", "post"),
        ("/explain", "post"),
        ("/v2/models/{name}/infer", "post"),
        ("/optimization/batch-predict", "post"),
        ("/optimization/optimize-model", "post"),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        for code in ["400", "408", "413", "422"] {
            assert!(responses[code].is_object(), "{path}: no {code} documented");
        }
    }
    server.shutdown().await.unwrap();
}

/// schemathesis, with every check, against the server's own OpenAPI document: generated valid
/// and invalid requests on every route must each get an answer the document allows, never a
/// 5xx. Bounded in examples per route, so it runs in CI.
#[test]
fn schemathesis_finds_no_failure_against_the_openapi_document() {
    let python = common::test_python("schemathesis");
    let schemathesis = python.with_file_name("schemathesis");
    // The optimisation jobs write into the run folder: a copy of its own.
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_copy(tmp.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut settings = config(BatchConfig::default());
    settings.models[0].dir = dir;
    let server = runtime.block_on(Server::start(settings)).unwrap();
    let url = format!("http://{}/openapi.json", server.addr);
    let settings = common::root().join("tests/helpers/schemathesis.toml");
    let out = std::process::Command::new(&schemathesis)
        .arg(format!("--config-file={}", settings.display()))
        .args(["run", &url, "--checks", "all", "--max-examples", "25"])
        .args(["--seed", "1", "--workers", "1", "--request-timeout", "30"])
        .arg(format!(
            "--report-dir={}",
            tmp.path().join("report").display()
        ))
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache folder goes there too, not into the repository.
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    runtime.block_on(server.shutdown()).unwrap();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("passed"), "{said}");
}
