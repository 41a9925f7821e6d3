// The API reference page: Swagger UI (vendored, static/vendor/swagger-ui/, Apache-2.0) reading /api/v1/openapi.json.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: root.getAttribute("data-spec"), domNode: root, deepLinking: true });
})();
