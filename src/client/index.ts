export { TsloraClient, categorizeAdapterError, type TsloraClientOptions, type PinResult } from './adapter-client.js';
export { requestJson, errorMessageOf, type HttpTarget, type JsonResponse } from './http.js';
