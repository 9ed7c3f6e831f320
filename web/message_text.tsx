/**
 * A message's text as the page shows it: the formatting of rich_text.ts made into elements
 * (never HTML from the text), links opening in a new tab without giving it this page, and the
 * `@names` the server found to be mentions marked (the reader's own more strongly).
 */

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { MENTION } from "../protocol/mentions.ts";
import { nameKey } from "../protocol/names.ts";
import type { Block, Inline } from "./rich_text.ts";
import { parseRichText } from "./rich_text.ts";

/** The mentioned ids (by name without case, to the id) and the reader's id. */
interface Mentioned {
  readonly ids: ReadonlyMap<string, string>;
  readonly me: string;
}

const MentionContext = createContext<Mentioned>({ ids: new Map(), me: "" });

/** `text` with each `@name` that is one of the message's mentions in a span of its own. */
function TextWithMentions({ text }: { text: string }) {
  const { ids, me } = useContext(MentionContext);
  if (ids.size === 0 || !text.includes("@")) return <>{text}</>;
  const parts = [];
  let from = 0;
  for (const match of text.matchAll(MENTION)) {
    const written = match[1]!;
    const id = ids.get(nameKey(written)) ?? ids.get(nameKey(written.replace(/[._-]+$/, "")));
    if (id === undefined) continue;
    parts.push(text.slice(from, match.index));
    parts.push(
      <span key={match.index} class={id === me ? "mention mention-me" : "mention"}>
        {match[0]}
      </span>,
    );
    from = match.index + match[0].length;
  }
  parts.push(text.slice(from));
  return <>{parts}</>;
}

function Inlines({ nodes }: { nodes: readonly Inline[] }) {
  return (
    <>
      {nodes.map((node, i) => {
        switch (node.kind) {
          case "text":
            return <TextWithMentions key={i} text={node.text} />;
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

export function MessageText(
  { content, mentions = [], me = "" }: {
    content: string;
    mentions?: readonly string[];
    me?: string;
  },
) {
  const ids = new Map(mentions.map((id) => [nameKey(id), id]));
  return (
    <MentionContext.Provider value={{ ids, me }}>
      <div class="msg-text">
        {parseRichText(content).map((block, i) => <BlockView key={i} block={block} />)}
      </div>
    </MentionContext.Provider>
  );
}
