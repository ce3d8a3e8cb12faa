//! The read API under `/api/v1/`: JSON of the same data the pages show.

use crate::AppState;
use crate::data::{self, INTAKE_LOG_LIMIT, IntakeRecord, QUARANTINE_LIMIT, TableSummary};
use crate::errors::log_metadata_error;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiban_metadata::{MetadataError, Provider, QuarantineListing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most rows one list request may ask for.
const MAX_LIMIT: i64 = 10_000;

/// An API error, answered as `{ "error": message }` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: &'static str,
}

impl ApiError {
    fn not_found(message: &'static str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message,
        }
    }

    fn bad_request(message: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

impl From<MetadataError> for ApiError {
    fn from(err: MetadataError) -> Self {
        log_metadata_error("api", &err);
        match err {
            MetadataError::NotFound { .. } => Self::not_found("not found"),
            // The cause is in the log; the client learns only that it failed.
            _ => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "internal server error",
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: &'static str,
        }
        (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn to_json(value: impl serde::Serialize) -> ApiResult {
    serde_json::to_value(value).map(Json).map_err(|err| {
        tracing::error!(error = %err, "API response could not be serialized");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal server error",
        }
    })
}

/// Query parameters of the list endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<i64>,
    provider: Option<String>,
}

impl ListQuery {
    fn parse(query: Result<Query<ListQuery>, QueryRejection>) -> Result<Self, ApiError> {
        let Query(q) = query.map_err(|_| ApiError::bad_request("invalid query parameters"))?;
        if q.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
            return Err(ApiError::bad_request("limit must be between 1 and 10000"));
        }
        Ok(q)
    }
}

/// `GET /api/v1/summary`
pub(crate) async fn summary(State(state): State<AppState>) -> ApiResult {
    to_json(data::summary(&state.meta, &state.data_dir_label).await?)
}

/// `GET /api/v1/providers`
pub(crate) async fn providers(State(state): State<AppState>) -> ApiResult {
    #[derive(Serialize)]
    struct Body {
        providers: Vec<Provider>,
    }
    to_json(Body {
        providers: state.meta.providers().await?,
    })
}

/// `GET /api/v1/tables`
pub(crate) async fn tables(State(state): State<AppState>) -> ApiResult {
    #[derive(Serialize)]
    struct Body {
        tables: Vec<TableSummary>,
    }
    to_json(Body {
        tables: data::tables(&state.meta).await?,
    })
}

/// `GET /api/v1/intakes?limit=`
pub(crate) async fn intakes(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let q = ListQuery::parse(query)?;
    let limit = q.limit.unwrap_or(INTAKE_LOG_LIMIT);
    #[derive(Serialize)]
    struct Body {
        intakes: Vec<IntakeRecord>,
    }
    to_json(Body {
        intakes: data::intake_records(&state.meta, limit).await?,
    })
}

/// `GET /api/v1/intakes/{id}`
pub(crate) async fn intake(
    State(state): State<AppState>,
    Path(intake_id): Path<String>,
) -> ApiResult {
    match data::intake(&state.meta, &intake_id).await {
        Ok(record) => to_json(record),
        Err(MetadataError::NotFound { .. }) => Err(ApiError::not_found("intake not found")),
        Err(err) => Err(err.into()),
    }
}

/// `GET /api/v1/quarantine?provider=&limit=`
pub(crate) async fn quarantine(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let q = ListQuery::parse(query)?;
    let provider = q
        .provider
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let limit = q.limit.unwrap_or(QUARANTINE_LIMIT);
    #[derive(Serialize)]
    struct Body {
        quarantine: Vec<QuarantineListing>,
    }
    to_json(Body {
        quarantine: data::quarantine(&state.meta, provider, limit).await?,
    })
}

/// Any other path under `/api/`.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}
