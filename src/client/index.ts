export { TsloraClient, categorizeAdapterError, type TsloraClientOptions, type PinResult } from './adapter-client.js';
export { GenerateClient, type GenerateEvent } from './generate-client.js';
export { requestJson, requestEvents, errorMessageOf, type HttpTarget, type JsonResponse } from './http.js';
