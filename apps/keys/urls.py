from rest_framework.routers import SimpleRouter

from apps.keys.api import KeyViewSet

router = SimpleRouter()
router.register("keys", KeyViewSet, basename="key")

urlpatterns = router.urls
