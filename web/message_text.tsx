/**
 * A message's text as the page shows it: the formatting of rich_text.ts made into elements
 * (never HTML from the text), links opening in a new tab without giving it this page.
 */

import type { Block, Inline } from "./rich_text.ts";
import { parseRichText } from "./rich_text.ts";

function Inlines({ nodes }: { nodes: readonly Inline[] }) {
  return (
    <>
      {nodes.map((node, i) => {
        switch (node.kind) {
          case "text":
            return node.text;
          case "code":
            return <code key={i}>{node.text}</code>;
          case "bold":
            return (
              <strong key={i}>
                <Inlines nodes={node.children} />
              </strong>
            );
          case "italic":
            return (
              <em key={i}>
                <Inlines nodes={node.children} />
              </em>
            );
          case "link":
            return (
              <a key={i} href={node.href} target="_blank" rel="noopener noreferrer">
                {node.text}
              </a>
            );
        }
      })}
    </>
  );
}

function BlockView({ block }: { block: Block }) {
  return block.kind === "code-block"
    ? <pre class="msg-code"><code>{block.text}</code></pre>
    : (
      <p class="msg-para">
        <Inlines nodes={block.children} />
      </p>
    );
}

export function MessageText({ content }: { content: string }) {
  return (
    <div class="msg-text">
      {parseRichText(content).map((block, i) => <BlockView key={i} block={block} />)}
    </div>
  );
}
