//! `grpc.health.v1.Health`: the daemon checks every few seconds and drops
//! the session after two failures.

use std::pin::Pin;

use futures::Stream;
use kiln_proto::health::health_check_response::ServingStatus;
use kiln_proto::health::health_server::{Health, HealthServer};
use kiln_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use tonic::{Request, Response, Status};

/// Answers SERVING for the server as a whole (service `""`), like
/// `grpc/health.NewServer()` in a Go session.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HealthService;

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
