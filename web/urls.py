from django.urls import path

from web import events, moderation, views

app_name = "web"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("polls/new/", views.poll_create, name="poll_create"),
    path("polls/new/choice-row/", views.choice_row, name="choice_row"),
    path("p/<str:slug>/", views.poll_detail, name="poll"),
    path("p/<str:slug>/vote/", views.vote, name="vote"),
    path("p/<str:slug>/results/", views.results, name="results"),
    path("p/<str:slug>/live/", views.live, name="live"),
    path("p/<str:slug>/qr.svg", views.qr_svg, name="qr"),
    path("p/<str:slug>/manage/<str:token>/", views.manage, name="manage"),
    path("p/<str:slug>/manage/<str:token>/close/", views.manage_close, name="manage_close"),
    path("p/<str:slug>/manage/<str:token>/reopen/", views.manage_reopen, name="manage_reopen"),
    path("p/<str:slug>/manage/<str:token>/settings/", views.manage_settings, name="manage_settings"),
    path("p/<str:slug>/manage/<str:token>/delete/", views.manage_delete, name="manage_delete"),
    path("p/<str:slug>/manage/<str:token>/export.csv", views.manage_export, name="manage_export"),
    path("p/<str:slug>/manage/<str:token>/chart/", views.manage_chart, name="manage_chart"),
    path("p/<str:slug>/manage/<str:token>/void/", views.manage_void, name="manage_void"),
    path("p/<str:slug>/manage/<str:token>/words/", moderation.manage_words, name="manage_words"),
    path("p/<str:slug>/manage/<str:token>/export/", views.manage_export_prepare, name="manage_export_prepare"),
    path("p/<str:slug>/manage/<str:token>/export/file/", views.manage_export_file, name="manage_export_file"),
    path("events/new/", events.event_create, name="event_create"),
    path("join/", events.join, name="join"),
    path("e/<str:code>/", events.event_phone, name="event_phone"),
    path("e/<str:code>/vote/", events.event_vote, name="event_vote"),
    path("e/<str:code>/live/", events.event_live, name="event_live"),
    path("e/<str:code>/qr.svg", events.event_qr, name="event_qr"),
    path("e/<str:code>/manage/<str:token>/", events.event_manage, name="event_manage"),
    path("e/<str:code>/manage/<str:token>/control/", events.event_control, name="event_control"),
    path("e/<str:code>/manage/<str:token>/phones/", events.event_phones, name="event_phones"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]
