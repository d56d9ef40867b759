/* boogie_tasks: live progress bars for {% task_progress record %}. No dependency.
 *
 * Every element with class "boogie-task" and a data-status-url polls that URL
 * (a JSON status) until the record is final. Events, bubbling from the element:
 *   boogie-task:progress  after every status answer, detail = the JSON
 *   boogie-task:finished  once, when the record reached a final state
 *   boogie-task:error     once, when the bar gives up (404, refusal, network)
 * Bars added to the page later: call window.BoogieTasks.init(container).
 */
(function () {
  "use strict";

  if (window.BoogieTasks) {
    // The script is included once per bar: the first copy does the work.
    window.BoogieTasks.init(document);
    return;
  }

  var HIDDEN_INTERVAL = 10000; // least ms between two requests while the tab is hidden
  var MAX_BACKOFF = 30000; // most ms between two attempts after failures
  var REQUEST_TIMEOUT = 15000; // ms before a request that hangs counts as failed

  function Bar(element) {
    this.element = element;
    this.url = element.getAttribute("data-status-url");
    this.interval = Math.max(parseInt(element.getAttribute("data-interval"), 10) || 1000, 50);
    this.maxFailures = Math.max(parseInt(element.getAttribute("data-max-failures"), 10) || 5, 1);
    this.failures = 0;
    this.timer = null;
    this.busy = false;
    this.stopped = false;
    this.part = function (name) {
      return element.querySelector(".boogie-task__" + name);
    };
    var cancel = this.part("cancel");
    if (cancel) {
      cancel.addEventListener("click", this.cancel.bind(this));
    }
  }

  Bar.prototype.text = function (name, fallback) {
    return this.element.getAttribute("data-text-" + name) || fallback;
  };

  Bar.prototype.schedule = function (delay) {
    if (this.stopped) {
      return;
    }
    if (document.hidden) {
      delay = Math.max(delay, HIDDEN_INTERVAL); // nobody looks: ask less often
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(this.poll.bind(this), delay);
  };

  Bar.prototype.wake = function () {
    // The tab is visible again: ask now rather than after the long hidden delay.
    if (!this.stopped && !this.busy) {
      this.schedule(0);
    }
  };

  Bar.prototype.poll = function () {
    var bar = this;
    if (bar.stopped || bar.busy) {
      return;
    }
    bar.busy = true;
    request(bar.url, { method: "GET" })
      .then(
        function (response) {
          return readJson(response).then(function (data) {
            bar.busy = false;
            bar.answer(response.status, data);
          });
        },
        function () {
          bar.busy = false;
          bar.failed();
        }
      );
  };

  Bar.prototype.answer = function (status, data) {
    if (status === 200 && data && data.status) {
      this.failures = 0;
      this.render(data);
      this.fire("progress", data);
      if (data.complete) {
        this.stop();
        this.fire("finished", data);
      } else {
        this.schedule(this.interval);
      }
    } else if (status === 404) {
      this.giveUp(this.text("not-found", "This task does not exist."), status);
    } else if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      this.giveUp(this.text("http-error", "The server refused the request") + " (" + status + ").", status);
    } else {
      this.failed(); // 5xx, a timeout, or an answer that is not ours: try again later
    }
  };

  Bar.prototype.failed = function () {
    this.failures += 1;
    if (this.failures >= this.maxFailures) {
      this.giveUp(this.text("network-error", "Lost contact with the server."), 0);
      return;
    }
    this.schedule(Math.min(this.interval * Math.pow(2, this.failures), MAX_BACKOFF));
  };

  Bar.prototype.giveUp = function (message, status) {
    this.stop();
    this.element.setAttribute("data-state", "error");
    this.show("error", message);
    this.fire("error", { status: status, message: message });
  };

  Bar.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this.timer);
    var cancel = this.part("cancel");
    if (cancel) {
      cancel.hidden = true;
    }
  };

  Bar.prototype.render = function (data) {
    var progress = data.progress || {};
    var known = progress.total !== null && progress.total !== undefined;
    var percent = data.status === "SUCCESSFUL" ? 100 : Number(progress.percent) || 0;
    known = known || data.status === "SUCCESSFUL";
    this.element.setAttribute("data-status", data.status);

    var track = this.part("bar");
    var fill = this.part("fill");
    if (track) {
      track.classList.toggle("boogie-task__bar--indeterminate", !known && !data.complete);
      if (known) {
        track.setAttribute("aria-valuenow", String(percent));
      } else {
        track.removeAttribute("aria-valuenow");
      }
    }
    if (fill) {
      fill.style.width = (known ? percent : 0) + "%";
    }

    var label = data.status_display || data.status;
    if (data.cancel_requested && !data.complete) {
      label += " (" + this.text("canceling", "canceling…") + ")";
    }
    this.show("status", label);
    this.show("percent", known ? Math.floor(percent) + "%" : "");
    var eta = progress.eta_seconds;
    var etaText = "";
    if (data.status === "RUNNING" && typeof eta === "number") {
      etaText = this.text("eta", "about {time} left").replace("{time}", duration(eta));
    }
    this.show("eta", etaText);
    // A finished run's last message ("rendering page 5") no longer says what it does.
    this.show("message", data.status === "SUCCESSFUL" ? "" : progress.description || "");

    var result = "";
    if (data.status === "SUCCESSFUL" && data.result !== null && data.result !== undefined) {
      result = typeof data.result === "string" ? data.result : JSON.stringify(data.result);
    }
    this.show("result", result);
    var error = data.complete && data.status !== "SUCCESSFUL" ? data.error || "" : "";
    this.show("error", error === label ? "" : error); // "Canceled" once, not twice
    var cancel = this.part("cancel");
    if (cancel) {
      cancel.hidden = !!data.complete;
      cancel.disabled = !!data.cancel_requested;
    }
  };

  // Text only, never markup: results, errors and messages come from tasks.
  Bar.prototype.show = function (name, text) {
    var node = this.part(name);
    if (!node) {
      return;
    }
    node.textContent = text;
    if (name === "result" || name === "error") {
      node.hidden = !text;
    }
  };

  Bar.prototype.fire = function (name, detail) {
    var event;
    try {
      event = new CustomEvent("boogie-task:" + name, { bubbles: true, detail: detail });
    } catch (e) {
      return; // a browser without CustomEvent: no events, the bar still works
    }
    this.element.dispatchEvent(event);
  };

  Bar.prototype.cancel = function () {
    var bar = this;
    var url = bar.element.getAttribute("data-cancel-url");
    if (!url) {
      return;
    }
    var button = bar.part("cancel");
    if (button) {
      button.disabled = true;
    }
    request(url, {
      method: "POST",
      headers: { "X-CSRFToken": bar.element.getAttribute("data-csrf-token") || csrfCookie() },
    }).then(
      function (response) {
        return readJson(response).then(function (data) {
          if (response.status === 200 && data && data.status) {
            bar.render(data);
            bar.wake();
          } else {
            bar.show("error", bar.text("cancel-refused", "The task could not be cancelled."));
            if (button) {
              button.disabled = false;
            }
          }
        });
      },
      function () {
        bar.show("error", bar.text("cancel-refused", "The task could not be cancelled."));
        if (button) {
          button.disabled = false;
        }
      }
    );
  };

  function request(url, options) {
    options.credentials = "same-origin";
    options.cache = "no-store";
    options.headers = options.headers || {};
    options.headers.Accept = "application/json";
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = null;
    if (controller) {
      options.signal = controller.signal;
      timer = setTimeout(function () {
        controller.abort();
      }, REQUEST_TIMEOUT);
    }
    return fetch(url, options).then(
      function (response) {
        clearTimeout(timer);
        return response;
      },
      function (error) {
        clearTimeout(timer);
        throw error;
      }
    );
  }

  function readJson(response) {
    return response.json().catch(function () {
      return null; // an HTML error page, say: not an answer of ours
    });
  }

  function csrfCookie() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) {
      return seconds + " s";
    }
    if (seconds < 3600) {
      return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    }
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }

  var bars = [];

  function init(root) {
    var elements = (root || document).querySelectorAll(".boogie-task[data-status-url]");
    for (var i = 0; i < elements.length; i++) {
      var element = elements[i];
      if (element.boogieTask) {
        continue; // already followed
      }
      var bar = new Bar(element);
      element.boogieTask = bar;
      if (element.getAttribute("data-complete") === "true") {
        // Drawn final by the server: nothing will change, so nothing is asked;
        // listeners still hear how it ended, from the status the page carries.
        var carried = element.querySelector('script[type="application/json"]');
        if (carried) {
          var data = JSON.parse(carried.textContent);
          bar.fire("progress", data);
          bar.fire("finished", data);
        }
        continue;
      }
      bars.push(bar);
      bar.schedule(0);
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      for (var i = 0; i < bars.length; i++) {
        bars[i].wake();
      }
    }
  });

  window.BoogieTasks = { init: init };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      init(document);
    });
  } else {
    init(document);
  }
})();
