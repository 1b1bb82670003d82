//! `grpc.health.v1.Health`: the daemon checks every few seconds and drops
//! the session after two failures. Each check is also the daemon's sign of
//! life: [`Liveness`] tells how long ago the last one came.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use futures::Stream;
use kiln_proto::health::health_check_response::ServingStatus;
use kiln_proto::health::health_server::{Health, HealthServer};
use kiln_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use tonic::{Request, Response, Status};

/// When the daemon last showed it is alive on this session.
///
/// BuildKit health-checks every session every 5 seconds (its
/// `session/grpc.go`), Docker's embedded BuildKit too; a daemon that is
/// stopped, or a network path that stalls, stops the checks. The clock
/// starts when the session is built, so a daemon that never checks counts
/// as silent from then.
#[derive(Debug, Clone)]
pub struct Liveness {
    last: Arc<Mutex<Instant>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            last: Arc::new(Mutex::new(Instant::now())),
        }
    }
}

impl Liveness {
    /// Records a sign of life now.
    pub fn beat(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// How long ago the last sign of life came.
    #[must_use]
    pub fn silent_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// Completes once nothing was heard for `limit`, returning how long
    /// that was (checks a few times per second).
    pub async fn silence(&self, limit: Duration) -> Duration {
        loop {
            let quiet = self.silent_for();
            if quiet >= limit {
                return quiet;
            }
            let left = limit.saturating_sub(quiet);
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        }
    }
}

/// Answers SERVING for the server as a whole (service `""`), like
/// `grpc/health.NewServer()` in a Go session, and records each check.
#[derive(Debug, Clone, Default)]
pub(crate) struct HealthService {
    pub(crate) liveness: Liveness,
}

impl HealthService {
    pub(crate) fn into_server(self) -> HealthServer<Self> {
        HealthServer::new(self)
    }
}

fn serving() -> HealthCheckResponse {
    HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.liveness.beat();
        let service = request.into_inner().service;
        if service.is_empty() {
            Ok(Response::new(serving()))
        } else {
            Err(Status::not_found(format!("unknown service {service:?}")))
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Ok(Response::new(HealthListResponse {
            statuses: [(String::new(), serving())].into_iter().collect(),
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("health watch is not served"))
    }
}
