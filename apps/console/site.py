"""The admin site, with the operator's overview among its pages: behind the admin login, each part of
it shown to those who may view the models it reads."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Conveyor"
    site_title = "Conveyor console"
    index_title = "Console"
    # "View site": the landing page, which says what this server is and where everything is.
    site_url = "/"

    def get_urls(self) -> list[URLPattern | URLResolver]:
        from apps.console import spend, views  # the views read models: imported once the apps are ready

        return [
            path("overview/", self.admin_view(views.overview), name="overview"),
            path("overview/runs/", self.admin_view(views.overview_runs), name="overview_runs"),
            path("spend/", self.admin_view(spend.spend_page), name="spend"),
            *super().get_urls(),
        ]
