app_name = "api"

# The JSON API of DESIGN.md is added by the API work (issue 5).
urlpatterns: list = []
