from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api import views

app_name = "api"


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI from the vendored sidecar assets. The split view serves its start-up script
    from this same URL (`?script`), so the page runs under the site's CSP with no inline script."""

    url_name = "api:schema"
    template_name = "api/swagger_ui.html"
    # DRF answers OPTIONS by rendering metadata through this page's HTML renderer, which has no
    # template for it: a 500. A page has nothing to describe; 405 lists what it takes.
    http_method_names = ["get", "head"]


urlpatterns = [
    path("polls/", views.PollCreateView.as_view(), name="poll_create"),
    path("polls/<str:id>/", views.PollDetailView.as_view(), name="poll"),
    path("polls/<str:id>/results/", views.PollResultsView.as_view(), name="results"),
    path("votes/", views.VoteCastView.as_view(), name="vote_cast"),
    path("events/", views.EventCreateView.as_view(), name="event_create"),
    path("events/<str:id>/", views.EventDetailView.as_view(), name="event"),
    path("events/<str:id>/control/", views.EventControlView.as_view(), name="event_control"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", ApiDocsView.as_view(), name="docs"),
]
