"""The /healthz ceiling with Locust, for machines without wrk: as many requests as the stack takes."""

from locust import FastHttpUser, constant, task


class HealthCheck(FastHttpUser):
    wait_time = constant(0)

    @task
    def healthz(self) -> None:
        self.client.get("/healthz")
