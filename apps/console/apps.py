from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    """The operator's console: the landing page, the admin's overview page and its charts."""

    default = True
    name = "apps.console"
    label = "console"


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the console's site (apps/console/site.py) as `admin.site`: every app
    registers its model admins there as before, and the overview lives among the admin's URLs.
    Named in INSTALLED_APPS in place of "django.contrib.admin"."""

    default = False
    default_site = "apps.console.site.ConsoleAdminSite"
