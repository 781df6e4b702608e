// Sequence diagrams in the site's palettes, light and dark.
//
// Material passes mermaid a theme stylesheet (themeCSS) that colours the
// diagrams from the palette's CSS variables. Its rules for the arrowheads and
// the step-number circles of sequence diagrams select `#arrowhead` and
// `#sequencenumber`, but mermaid 11 names those markers after the diagram
// (`<diagram id>-arrowhead`, `<diagram id>-sequencenumber`). Unmatched, they
// keep mermaid's default colours: in the dark palette the arrowheads are dark
// on dark, and the step numbers light on a light circle. These rules select
// the markers by the end of their id and give them the palette's colours;
// they are added to whatever themeCSS Material initialises mermaid with.
//
// The hook hooks/mermaid.py loads this file right after the site's own
// mermaid, on pages with a diagram, before Material calls mermaid.initialize.
(function () {
  "use strict";
  const rules = [
    '[id$="-arrowhead"] path, [id$="-filled-head"] path {'
      + " fill: var(--md-mermaid-sequence-message-line-color) !important;"
      + " stroke: none !important; }",
    '[id$="-crosshead"] path {'
      + " stroke: var(--md-mermaid-sequence-message-line-color) !important; }",
    '[id$="-sequencenumber"] {'
      + " fill: var(--md-mermaid-sequence-number-bg-color) !important; }",
  ].join("\n");
  const initialize = window.mermaid.initialize;
  window.mermaid.initialize = function (config) {
    const themed = Object.assign({}, config);
    themed.themeCSS = [config && config.themeCSS, rules].filter(Boolean).join("\n");
    return initialize.call(this, themed);
  };
})();
