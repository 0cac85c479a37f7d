//! The routes: KServe v2, raw-omics /predict, the optimisation API, /metrics and
//! /openapi.json. Handlers only parse, check and hand work to a model's batcher.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::{Deserialize, Serialize};
use tower_http::catch_panic::CatchPanicLayer;

use super::batcher::Submit;
use super::error::{ApiError, BodyTimeout, ErrorBody, JsonBody, RawJson, parse_json};
use super::explainer::{self, ExplainRequest, ExplainResponse};
use super::kserve::{self, InferRequest, InferResponse, ModelMetadata};
use super::metrics::Metrics;
use super::preprocess::{PredictRequest, PredictResponse, SampleInput, SamplePrediction};
use super::served::{ModelStatus, ServedModel, check_name};

pub struct AppState {
    pub models: BTreeMap<String, Arc<ServedModel>>,
    pub metrics: Arc<Metrics>,
    /// Every optimisation job since start, oldest first.
    pub jobs: std::sync::Mutex<Vec<OptimizationJob>>,
    /// One optimisation job runs at a time: each takes the CPU for a while.
    pub job_gate: Arc<tokio::sync::Semaphore>,
    /// False once shutdown has begun: readiness probes fail so load balancers move on.
    pub ready: AtomicBool,
    pub started: Instant,
}

type Shared = State<Arc<AppState>>;

impl AppState {
    fn model(&self, name: &str) -> Result<&Arc<ServedModel>, ApiError> {
        check_name(name).map_err(|e| ApiError::bad_request(e).with_field("model_name"))?;
        self.models.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            ApiError::not_found(format!(
                "no model named '{name}' is loaded (loaded: {})",
                known.join(", ")
            ))
            .with_field("model_name")
        })
    }

    /// The named model, or the only one when no name is given.
    fn model_or_only(&self, name: Option<&str>) -> Result<&Arc<ServedModel>, ApiError> {
        match (name, self.models.len()) {
            (Some(name), _) => self.model(name),
            (None, 1) => Ok(self.models.values().next().expect("one model")),
            (None, _) => Err(ApiError::field(
                "model",
                "several models are loaded: name one",
            )),
        }
    }
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize, body_timeout: Duration) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/features", get(model_features))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/predict", post(predict))
        .route("/explain", post(explain))
        .route("/optimization/status", get(optimization_status))
        .route("/optimization/batch-predict", post(batch_predict))
        .route("/optimization/optimize-model", post(optimize_model))
        .route("/optimization/jobs/{id}", get(optimization_job))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            super::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyTimeout(body_timeout)))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal("the server failed on this request").into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; GET /openapi.json lists them")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; GET /openapi.json lists them",
    )
}

fn model_path(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(name)| name)
        .map_err(|e| ApiError::bad_request(e.body_text()).with_field("model_name"))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Live {
    live: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Ready {
    ready: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ModelReady {
    name: String,
    ready: bool,
}

#[utoipa::path(get, path = "/v2/health/live", responses((status = 200, body = Live)))]
async fn live() -> Json<Live> {
    Json(Live { live: true })
}

#[utoipa::path(get, path = "/v2/health/ready", responses(
    (status = 200, body = Ready), (status = 503, body = Ready, description = "shutting down")))]
async fn ready(State(state): Shared) -> (StatusCode, Json<Ready>) {
    let ready = state.ready.load(Ordering::SeqCst);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Ready { ready }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct ServerMetadata {
    name: String,
    version: String,
    extensions: Vec<String>,
}

#[utoipa::path(get, path = "/v2", responses((status = 200, body = ServerMetadata)))]
async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "deepinsight".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        // Triton's name for the binary data extension (kserve.rs).
        extensions: vec!["binary_tensor_data".into()],
    })
}

#[utoipa::path(get, path = "/v2/models/{name}", params(("name" = String, Path, pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")),
    responses((status = 200, body = ModelMetadata), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn model_metadata(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let model = state.model(&model_path(path)?)?;
    Ok(Json(kserve::metadata(
        &model.name,
        model.pool.backend,
        model.shape,
        model.feature_count(),
        model.classes.len(),
    )))
}

#[utoipa::path(get, path = "/v2/models/{name}/ready", params(("name" = String, Path, pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")),
    responses((status = 200, body = ModelReady), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn model_ready(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<ModelReady>), ApiError> {
    let model = state.model(&model_path(path)?)?;
    let ready = state.ready.load(Ordering::SeqCst);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((
        code,
        Json(ModelReady {
            name: model.name.clone(),
            ready,
        }),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct ModalityFeatures {
    name: String,
    features: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Features {
    name: String,
    modalities: Vec<ModalityFeatures>,
}

/// The features /predict reads, per modality, in the order an array of values follows.
#[utoipa::path(get, path = "/v2/models/{name}/features", params(("name" = String, Path, pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")),
    responses((status = 200, body = Features), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn model_features(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Features>, ApiError> {
    let model = state.model(&model_path(path)?)?;
    Ok(Json(Features {
        name: model.name.clone(),
        modalities: model
            .preprocess
            .feature_space
            .modalities
            .iter()
            .map(|m| ModalityFeatures {
                name: m.name.clone(),
                features: m.features.clone(),
            })
            .collect(),
    }))
}

/// Batcher options; a deadline counts from the request's arrival, parsing included.
fn submit_options(
    arrival: tokio::time::Instant,
    priority: Option<u8>,
    timeout_ms: Option<u64>,
) -> Submit {
    Submit {
        priority,
        deadline: timeout_ms.map(|ms| arrival + Duration::from_millis(ms)),
    }
}

/// KServe v2 inference on FP32 images [N, C, H, W] (`input`) or raw omics values [N, F]
/// (`omics`, normalised and rendered as /predict does), as JSON numbers or with the binary
/// data extension (`Inference-Header-Content-Length`).
#[utoipa::path(post, path = "/v2/models/{name}/infer", params(("name" = String, Path, pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")),
    request_body = InferRequest,
    responses((status = 200, body = InferResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
async fn infer(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
    headers: axum::http::HeaderMap,
    RawJson(body): RawJson,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let model = state.model(&model_path(path)?)?.clone();
    let header_length = header_length(&headers)?;
    // A batch of 224x224 images is megabytes of JSON: parsed where the body's size says, as
    // /predict's is, and its deadline counts from arrival.
    let served = model.clone();
    let (request, wanted, images, n) = parse_and_prepare(body, move |body| {
        let (json, binary) = kserve::split_body(body, header_length)?;
        let mut request: InferRequest = parse_json(json).map_err(|e| match header_length {
            // With a header length, JSON that does not parse most often means a length that
            // cuts it short or takes in binary bytes: name the header.
            Some(length) if e.body.code == "malformed_json" => ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "malformed_json",
                format!(
                    "the first {length} bytes (Inference-Header-Content-Length) are not one JSON \
                     object: {}",
                    e.body.error
                ),
            )
            .with_field(kserve::HEADER_LENGTH),
            _ => e,
        })?;
        let wanted = kserve::requested_outputs(&request)?;
        let features = served.feature_count();
        let input = kserve::input(&mut request, served.shape, features, binary)?;
        let images = match input.kind {
            kserve::InputKind::Images => input.values,
            kserve::InputKind::Omics => {
                let allow_missing = request.parameters.allow_missing;
                served.render_rows(&input.values, input.n, allow_missing)?
            }
        };
        Ok((request, wanted, images, input.n))
    })
    .await?;
    let options = submit_options(
        tokio::time::Instant::from_std(start),
        request.parameters.priority,
        request.parameters.timeout_ms,
    );
    let probabilities = model
        .infer(images, n, Some(options))
        .await
        .map_err(|e| e.renamed("priority", "parameters.priority"))?;
    let k = model.classes.len();
    let mut outputs = Vec::new();
    let mut binary = Vec::new();
    if let Some(encoding) = wanted.probabilities {
        let values = kserve::OutputValues::Fp32(probabilities.concat());
        let name = kserve::PROBABILITIES;
        outputs.push(kserve::output(
            name,
            vec![n, k],
            encoding,
            values,
            &mut binary,
        ));
    }
    if let Some(encoding) = wanted.label {
        let labels = probabilities
            .iter()
            .map(|p| model.classes[crate::model::metrics::argmax(p)].as_str())
            .collect();
        let values = kserve::OutputValues::Bytes(labels);
        outputs.push(kserve::output(
            kserve::LABEL,
            vec![n],
            encoding,
            values,
            &mut binary,
        ));
    }
    model.live.request(start.elapsed());
    let response = InferResponse {
        model_name: model.name.clone(),
        model_version: "1".into(),
        id: request.id,
        outputs,
    };
    if binary.is_empty() {
        return Ok(Json(response).into_response());
    }
    let mut body = serde_json::to_vec(&response)
        .map_err(|e| ApiError::internal(format!("cannot write the answer: {e}")))?;
    let json_length = body.len();
    body.extend(binary);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static("inference-header-content-length"),
                json_length.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// The binary data extension's `Inference-Header-Content-Length`, when given.
fn header_length(headers: &axum::http::HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(value) = headers.get(kserve::HEADER_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{}: {value:?} is not a byte count",
                kserve::HEADER_LENGTH
            ))
            .with_field(kserve::HEADER_LENGTH)
        })
}

/// Bodies up to this size are parsed and rendered on the async thread, which costs less than
/// a hop to a blocking thread; larger ones on a blocking thread, so that one big request
/// cannot stall the others.
const INLINE_BODY_BYTES: usize = 256 * 1024;

/// Runs `work` on the request's text where [`INLINE_BODY_BYTES`] says.
async fn parse_and_prepare<R: Send + 'static>(
    body: Bytes,
    work: impl FnOnce(&[u8]) -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    if body.len() <= INLINE_BODY_BYTES {
        return work(&body);
    }
    tokio::task::spawn_blocking(move || work(&body))
        .await
        .map_err(|e| ApiError::internal(format!("preprocessing failed: {e}")))?
}

/// Raw omics values -> the saved imputation, normalisation, selection and layout -> the model.
#[utoipa::path(post, path = "/predict", request_body = PredictRequest,
    responses((status = 200, body = PredictResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
async fn predict(
    State(state): Shared,
    RawJson(body): RawJson,
) -> Result<Json<PredictResponse>, ApiError> {
    let start = Instant::now();
    let arrival = tokio::time::Instant::from_std(start);
    let (model, options, prepared) = parse_and_prepare(body, move |body| {
        let request: PredictRequest = parse_json(body)?;
        let model = state.model_or_only(request.model.as_deref())?.clone();
        let prepared = model.prepare(
            &request.samples,
            request.allow_missing,
            request.ignore_unknown,
        )?;
        let options = submit_options(arrival, request.priority, request.timeout_ms);
        Ok((model, options, prepared))
    })
    .await?;
    let predictions = model.predict(prepared, Some(options)).await?;
    model.live.request(start.elapsed());
    Ok(Json(PredictResponse {
        model_name: model.name.clone(),
        model_sha256: model.model_sha256.clone(),
        predictions,
    }))
}

/// One sample's prediction and the features that drove it: a class activation map of the
/// model (saliency by default) read at each feature's pixel. Runs outside the batcher, on a
/// blocking thread, one request at a time per model.
#[utoipa::path(post, path = "/explain", request_body = ExplainRequest,
    responses((status = 200, body = ExplainResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn explain(
    State(state): Shared,
    RawJson(body): RawJson,
) -> Result<Json<ExplainResponse>, ApiError> {
    // Not counted in the model's live latency and QPS, which describe predictions; /metrics
    // counts and times every route.
    let (model, ask, method, stage, prepared) = parse_and_prepare(body, move |body| {
        let request: ExplainRequest = parse_json(body)?;
        let model = state.model_or_only(request.model.as_deref())?.clone();
        let ask = explainer::check(&request, &model.classes)?;
        let prepared = model
            .prepare(
                std::slice::from_ref(&request.sample),
                request.allow_missing,
                request.ignore_unknown,
            )
            .map_err(|e| e.renamed("samples[0]", "sample"))?;
        Ok((model, ask, request.method, request.stage, prepared))
    })
    .await?;
    let include_map = ask.include_map;
    let answer = model.explain(&prepared, ask).await?;
    let classes = &model.classes;
    Ok(Json(ExplainResponse {
        model_name: model.name.clone(),
        model_sha256: model.model_sha256.clone(),
        id: prepared.ids.into_iter().next().flatten(),
        predicted: classes[answer.predicted].clone(),
        probabilities: classes.iter().cloned().zip(answer.probabilities).collect(),
        target: classes[answer.target].clone(),
        method,
        stage,
        features: answer.features,
        map_shape: include_map.then_some(answer.maps.shape),
        map: include_map.then_some(answer.maps.values),
    }))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchPredictRequest<'a> {
    /// A loaded model's name (`serve::served::check_name`'s rule).
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
    pub model_name: String,
    /// Samples as in /predict.
    #[serde(borrow)]
    #[schema(min_items = 1, max_items = 4096)]
    pub data: Vec<SampleInput<'a>>,
    /// Through the dynamic batcher (true, the default) or straight to a worker.
    #[serde(default = "batching_on")]
    pub enable_batching: bool,
    #[serde(default)]
    pub allow_missing: bool,
    #[serde(default)]
    pub ignore_unknown: bool,
}

fn batching_on() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchPredictResponse {
    pub model_name: String,
    pub batched: bool,
    pub samples: usize,
    pub elapsed_ms: f64,
    pub predictions: Vec<SamplePrediction>,
}

#[utoipa::path(post, path = "/optimization/batch-predict", request_body = BatchPredictRequest,
    responses((status = 200, body = BatchPredictResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn batch_predict(
    State(state): Shared,
    RawJson(body): RawJson,
) -> Result<Json<BatchPredictResponse>, ApiError> {
    let start = Instant::now();
    let (model, enable_batching, prepared) = parse_and_prepare(body, move |body| {
        let request: BatchPredictRequest = parse_json(body)?;
        let model = state.model(&request.model_name)?.clone();
        let prepared = model
            .prepare(&request.data, request.allow_missing, request.ignore_unknown)
            .map_err(|e| e.renamed("samples", "data"))?;
        Ok((model, request.enable_batching, prepared))
    })
    .await?;
    let n = prepared.n;
    let predictions = model
        .predict(prepared, enable_batching.then(Submit::default))
        .await?;
    model.live.request(start.elapsed());
    Ok(Json(BatchPredictResponse {
        model_name: model.name.clone(),
        batched: enable_batching,
        samples: n,
        elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
        predictions,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OptimizationStatus {
    pub version: String,
    pub uptime_seconds: f64,
    pub ready: bool,
    pub models: Vec<ModelStatus>,
    /// Optimisation jobs since start, oldest first.
    pub optimizations: Vec<OptimizationJob>,
}

/// Models loaded, artefact formats present, batcher settings, live latency and throughput.
#[utoipa::path(get, path = "/optimization/status", responses((status = 200, body = OptimizationStatus)))]
async fn optimization_status(State(state): Shared) -> Json<OptimizationStatus> {
    Json(OptimizationStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        ready: state.ready.load(Ordering::SeqCst),
        models: state.models.values().map(|m| m.status()).collect(),
        optimizations: state.jobs.lock().map(|j| j.clone()).unwrap_or_default(),
    })
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizeRequest {
    /// A loaded model's name (`serve::served::check_name`'s rule).
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
    pub model_name: String,
    /// Where the model goes, each at most once: `batch`, `server`, `mobile`.
    #[schema(schema_with = target_list)]
    pub target_platforms: Vec<String>,
    /// 0: measure the fp32 model only; 1 (default): write and check the targets' INT8 formats.
    #[serde(default = "int8_forms", deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 1)]
    pub optimization_level: u8,
    /// Least argmax agreement with fp32 on the checked samples (default
    /// `export::DEFAULT_MIN_AGREEMENT`, 0.99).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_agreement: Option<f64>,
}

fn int8_forms() -> u8 {
    1
}

/// An integer given as JSON allows (`1` or `1.0`): JSON Schema counts 1.0 as an integer, and
/// generated clients send it.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && (0.0..=f64::from(u8::MAX)).contains(&n) {
        Ok(n as u8)
    } else {
        Err(serde::de::Error::custom(format!(
            "{n}: expected a whole number from 0 to 255"
        )))
    }
}

/// `target_platforms` in the OpenAPI document: one to three distinct target names.
fn target_list() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["batch", "server", "mobile"])),
        )
        .min_items(Some(1))
        .unique_items(true)
        .build()
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OptimizationJob {
    pub id: String,
    pub model_name: String,
    pub target_platforms: Vec<String>,
    pub optimization_level: u8,
    pub status: JobStatus,
    /// Seconds from submission to the end, once ended.
    pub seconds: Option<f64>,
    pub report: Option<crate::export::ExportReport>,
    pub error: Option<String>,
}

/// Optimisation jobs waiting for their turn at most; more are refused with 429.
const MAX_QUEUED_JOBS: usize = 8;

fn update_job(state: &AppState, id: &str, change: impl FnOnce(&mut OptimizationJob)) {
    if let Ok(mut jobs) = state.jobs.lock()
        && let Some(job) = jobs.iter_mut().find(|j| j.id == id)
    {
        change(job);
    }
}

/// Runs the export path for the targets as a background job: answers 202 with the job, whose
/// status GET /optimization/jobs/{id} (and /optimization/status) then shows.
#[utoipa::path(post, path = "/optimization/optimize-model", request_body = OptimizeRequest,
    responses((status = 202, body = OptimizationJob), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn optimize_model(
    State(state): Shared,
    JsonBody(request): JsonBody<OptimizeRequest>,
) -> Result<(StatusCode, Json<OptimizationJob>), ApiError> {
    let model = state.model(&request.model_name)?.clone();
    let mut targets = Vec::new();
    for (i, t) in request.target_platforms.iter().enumerate() {
        let target = t
            .parse::<crate::export::Target>()
            .map_err(|e| ApiError::field(format!("target_platforms[{i}]"), e))?;
        if targets.contains(&target) {
            return Err(ApiError::field(
                format!("target_platforms[{i}]"),
                format!("'{t}' is named twice"),
            ));
        }
        targets.push(target);
    }
    if targets.is_empty() {
        return Err(ApiError::field(
            "target_platforms",
            "name at least one target (batch)",
        ));
    }
    match request.optimization_level {
        0 => targets.clear(),
        1 => {}
        other => {
            return Err(ApiError::field(
                "optimization_level",
                format!("{other}: 0 measures fp32 only, 1 writes the INT8 formats"),
            ));
        }
    }
    let defaults = crate::export::ExportOptions::new(model.dir.clone(), targets);
    let min_agreement = request.min_agreement.unwrap_or(defaults.min_agreement);
    if !(0.0..=1.0).contains(&min_agreement) {
        return Err(ApiError::field("min_agreement", "a share between 0 and 1"));
    }
    let mut wanted: Vec<String> = request.target_platforms.clone();
    wanted.sort();
    let job = {
        let mut jobs = state
            .jobs
            .lock()
            .map_err(|_| ApiError::internal("the job list is unavailable"))?;
        let queued = || jobs.iter().filter(|j| j.status == JobStatus::Queued);
        // The same export waiting already: one run of it answers both requests.
        let same = queued().find(|j| {
            let mut theirs = j.target_platforms.clone();
            theirs.sort();
            j.model_name == model.name
                && theirs == wanted
                && j.optimization_level == request.optimization_level
        });
        if let Some(job) = same {
            return Ok((StatusCode::ACCEPTED, Json(job.clone())));
        }
        if queued().count() >= MAX_QUEUED_JOBS {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_jobs",
                format!("{MAX_QUEUED_JOBS} optimisation jobs are waiting already; try again later"),
            )
            .retry_after(30));
        }
        let job = OptimizationJob {
            id: format!("opt-{}", jobs.len() + 1),
            model_name: model.name.clone(),
            target_platforms: request.target_platforms.clone(),
            optimization_level: request.optimization_level,
            status: JobStatus::Queued,
            seconds: None,
            report: None,
            error: None,
        };
        jobs.push(job.clone());
        job
    };
    let options = crate::export::ExportOptions {
        min_agreement,
        ..defaults
    };
    let id = job.id.clone();
    let worker_state = state.clone();
    tokio::spawn(async move {
        let submitted = Instant::now();
        let _turn = worker_state.job_gate.clone().acquire_owned().await;
        update_job(&worker_state, &id, |j| j.status = JobStatus::Running);
        let outcome = tokio::task::spawn_blocking(move || crate::export::run(&options)).await;
        update_job(&worker_state, &id, |j| {
            j.seconds = Some(submitted.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(report)) if report.rejected.is_empty() => {
                    j.status = JobStatus::Succeeded;
                    j.report = Some(report);
                }
                Ok(Ok(report)) => {
                    let names: Vec<&str> =
                        report.rejected.iter().map(|f| f.format.as_str()).collect();
                    j.status = JobStatus::Failed;
                    j.error = Some(format!(
                        "rejected (below min_agreement, not written): {}",
                        names.join(", ")
                    ));
                    j.report = Some(report);
                }
                Ok(Err(e)) => {
                    j.status = JobStatus::Failed;
                    j.error = Some(format!("{e:#}"));
                }
                Err(e) => {
                    j.status = JobStatus::Failed;
                    j.error = Some(format!("the job stopped: {e}"));
                }
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(get, path = "/optimization/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = OptimizationJob), (status = 404, body = ErrorBody)))]
async fn optimization_job(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<OptimizationJob>, ApiError> {
    let jobs = state
        .jobs
        .lock()
        .map_err(|_| ApiError::internal("the job list is unavailable"))?;
    jobs.iter()
        .find(|j| j.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no optimisation job '{id}'")).with_field("id"))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(<ApiDoc as utoipa::OpenApi>::openapi())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "deepinsight",
        description = "DeepInsight models over HTTP: KServe Open Inference Protocol v2, raw-omics /predict, the optimisation API and Prometheus metrics."
    ),
    paths(
        server_metadata,
        live,
        ready,
        model_metadata,
        model_ready,
        model_features,
        infer,
        predict,
        explain,
        optimization_status,
        batch_predict,
        optimize_model,
        optimization_job,
        metrics,
        openapi
    )
)]
struct ApiDoc;
