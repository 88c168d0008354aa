// Usher's GraphiQL: served with its files, so it works with no internet. Nothing is kept
// in the browser's storage, so a bearer token typed into Headers is gone with the tab.
(function () {
  var memory = {};
  var storage = {
    getItem: function (key) { return Object.prototype.hasOwnProperty.call(memory, key) ? memory[key] : null; },
    setItem: function (key, value) { memory[key] = String(value); },
    removeItem: function (key) { delete memory[key]; },
    clear: function () { memory = {}; },
    get length() { return Object.keys(memory).length; },
  };
  var endpoint = window.location.pathname;
  function fetcher(params, options) {
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    var extra = (options && options.headers) || {};
    Object.keys(extra).forEach(function (name) { headers[name] = extra[name]; });
    return fetch(endpoint, { method: "POST", headers: headers, body: JSON.stringify(params) })
      .then(function (response) { return response.json(); });
  }
  fetch(document.body.dataset.tour)
    .then(function (response) { return response.text(); })
    .then(function (tour) {
      var root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultQuery: tour,
        defaultHeaders: "{}",
        shouldPersistHeaders: false,
        storage: storage,
        defaultEditorToolsVisibility: "headers",
      }));
    });
})();
