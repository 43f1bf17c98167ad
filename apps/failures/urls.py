from rest_framework.routers import SimpleRouter

from apps.failures.api import FailureViewSet

router = SimpleRouter()
router.register("failures", FailureViewSet, basename="failure")

urlpatterns = router.urls
